package main

import (
	"os"
	"path/filepath"
)

// On Windows the agent's service keeps its configuration and state under
// %ProgramData%\Lifeboat (docs/windows.md), so agentctl looks there.
func init() {
	pd := os.Getenv("ProgramData")
	if pd == "" {
		pd = `C:\ProgramData`
	}
	DefaultAgentConfig = filepath.Join(pd, "Lifeboat", "agent.toml")
	DefaultState = filepath.Join(pd, "Lifeboat", "agent")
}
