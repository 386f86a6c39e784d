package cmdline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/lifeboat-dr/lifeboat/internal/buildinfo"
)

// Command is one command of a program's tree.
type Command struct {
	// Path is the command's words after the program's name: "run",
	// "group create". A parent ("group") is listed before its children.
	Path string
	// Args is what follows the path in a synopsis: "NAME --machines A,B".
	Args string
	// Short is the one-line summary (help, completion, man page NAME).
	Short string
	// Group says the command only groups its subcommands: its help lists
	// them.
	Group bool
}

// Program is one of the four programs: its commands and the function
// that runs them.
type Program struct {
	Name string
	// Args is the synopsis after the name: "[CONNECTION] COMMAND".
	Args string
	// Short is the one-line summary of the program; Long its man page's
	// description (Markdown).
	Short, Long string
	// Usage is what --help and 'help' print.
	Usage string
	// Section is the man section (1 user command, 8 administration).
	Section  string
	Commands []Command
	// RootFlags declares the flags the program takes before its command
	// (lifeboat's connection flags), or is nil.
	RootFlags func(fs *flag.FlagSet)
	// Run runs the program's argument list (root flags, command, its
	// arguments) as the program always did, with its own parsing through
	// Parse. Help goes to stdout: Run is given stdout for both streams when
	// --help is asked for.
	Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

const (
	annotation      = "lifeboat-cmdline"
	groupAnnotation = "lifeboat-cmdline-group"
)

// groupHelp prints the help of a command that groups subcommands.
func (p *Program) groupHelp(w io.Writer, c *cobra.Command) {
	fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\n%s\n\nCommands:\n", c.CommandPath(), c.Short)
	width := 0
	for _, sub := range c.Commands() {
		width = max(width, len(sub.Name()))
	}
	for _, sub := range c.Commands() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, sub.Name(), sub.Short)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for the flags of a command.\n", c.CommandPath())
}

// Execute runs the program's command line args: --version; help (the
// program's Usage, or 'help COMMAND' for the command's own); completion
// bash|zsh|fish|powershell; the hidden __man DIR (man pages, cobra/doc);
// an unknown command refused with suggestions; anything else through Run.
// Help returns nil; a usage error a *UsageError, whose hint names the
// --help to read.
func (p *Program) Execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := p.execute(ctx, args, stdout, stderr)
	var u *UsageError
	if errors.As(err, &u) && u.program == "" {
		u.program = p.Name
	}
	if IsHelp(err) {
		return nil
	}
	return err
}

func (p *Program) execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if buildinfo.IsVersionArg(args) {
		return p.Run(ctx, args, stdout, stderr)
	}
	rootFS := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	if p.RootFlags != nil {
		p.RootFlags(rootFS)
	}
	args = Normalize(rootFS, args, false, stderr)
	run := func(ctx context.Context, args []string) error {
		if WantsHelp(args) {
			return p.Run(ctx, args, stdout, stdout)
		}
		return p.Run(ctx, args, stdout, stderr)
	}
	root := p.tree(ctx, rootFS, func(*cobra.Command, []string) error { return run(ctx, args) }, stdout)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	if len(args) > 0 {
		switch args[0] {
		case cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd, "__man":
			p.probeFlags(root)
		}
	}
	_, err := root.ExecuteC()
	return err
}

// WantsHelp says whether args ask for help (--help or -h before any "--").
func WantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--help", "-help":
			return true
		}
	}
	return false
}

// tree builds the cobra tree of the program; every command of it runs
// runAll (Run with the whole command line).
func (p *Program) tree(ctx context.Context, rootFS *flag.FlagSet, runAll func(*cobra.Command, []string) error, stdout io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:                        strings.TrimSpace(p.Name + " " + p.Args),
		Short:                      p.Short,
		Long:                       p.Long,
		SilenceErrors:              true,
		SilenceUsage:               true,
		SuggestionsMinimumDistance: 2,
		DisableAutoGenTag:          true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			u := &UsageError{Err: fmt.Errorf("unknown command %q", args[0])}
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				u.Remedy = "did you mean " + strings.Join(s, " or ") + "? 'lifeboat --help' lists the commands"
				u.Remedy = strings.Replace(u.Remedy, "'lifeboat ", "'"+p.Name+" ", 1)
			}
			return u
		},
		RunE: runAll,
	}
	pfs, _ := shadow(rootFS)
	pfs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			root.PersistentFlags().AddFlag(f)
		}
	})
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{Err: err, Command: strings.TrimPrefix(strings.TrimPrefix(c.CommandPath(), p.Name), " ")}
	})
	byPath := map[string]*cobra.Command{"": root}
	for _, spec := range p.Commands {
		words := strings.Fields(spec.Path)
		parent := byPath[strings.Join(words[:len(words)-1], " ")]
		if parent == nil {
			panic("cmdline: " + p.Name + ": parent of " + spec.Path + " not listed before it")
		}
		c := &cobra.Command{
			Use:                strings.TrimSpace(words[len(words)-1] + " " + spec.Args),
			Short:              spec.Short,
			DisableFlagParsing: true,
			Annotations:        map[string]string{annotation: spec.Path},
			RunE:               runAll,
		}
		if spec.Group {
			c.Annotations[groupAnnotation] = "true"
			c.RunE = func(c *cobra.Command, args []string) error {
				if WantsHelp(args) {
					p.groupHelp(stdout, c)
					return nil
				}
				return runAll(c, args)
			}
		}
		parent.AddCommand(c)
		byPath[spec.Path] = c
	}
	defaultHelp := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		path, ours := c.Annotations[annotation]
		switch {
		case c == root:
			fmt.Fprint(stdout, p.Usage)
		case ours && c.Annotations[groupAnnotation] != "":
			p.groupHelp(stdout, c)
		case ours:
			// The command's own usage, as 'COMMAND --help' prints it.
			_ = p.Run(ctx, append(strings.Fields(path), "--help"), stdout, stdout)
		default:
			defaultHelp(c, args)
		}
	})
	root.AddCommand(&cobra.Command{
		Use:    "__man DIR",
		Short:  "write the man pages into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return p.writeMan(root, args[0])
		},
	})
	return root
}

// probeFlags gives every command of the tree the flags it parses, for
// completion and man pages: each is asked for --help with its output
// discarded and a cancelled context, and the flag set its parse saw is
// taken from the *HelpError.
func (p *Program) probeFlags(root *cobra.Command) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	host, _ := os.Hostname()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		path, ours := c.Annotations[annotation]
		if !ours {
			return
		}
		err := p.Run(ctx, append(strings.Fields(path), "--help"), io.Discard, io.Discard)
		var h *HelpError
		if !errors.As(err, &h) {
			return
		}
		pfs, _ := shadow(h.FlagSet)
		pfs.VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || root.PersistentFlags().Lookup(f.Name) != nil {
				return
			}
			if host != "" && f.DefValue == host {
				// A default taken from the host that generates the man
				// pages says nothing of the host that reads them.
				f.DefValue = ""
				f.Usage += " (default: this host's name)"
			}
			c.Flags().AddFlag(f)
		})
	}
	walk(root)
}

// writeMan writes a page per command into dir with cobra/doc, named
// PROG[-COMMAND...].SECTION.
func (p *Program) writeMan(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Short = "print the shell completion script of " + p.Name + " (bash, zsh, fish, powershell)"
		}
	}
	hdr := &doc.GenManHeader{Title: strings.ToUpper(p.Name), Section: p.Section, Source: "Lifeboat " + buildinfo.Get().Version, Manual: "Lifeboat"}
	if err := doc.GenManTree(root, hdr, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}
