// Package azuritetest starts a real Azurite blob emulator (npm
// azurite@3.35.0, which scripts/install-deps.sh installs) for the tests of
// the Azure Blob store and of the programs that use it: on a free port, in
// memory, stopped when the test ends. Outside CI a missing azurite-blob
// skips the test; with CI=true it fails. It never talks to Azure.
package azuritetest
