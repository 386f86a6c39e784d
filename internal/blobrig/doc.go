// Package blobrig is the rig of the programs' tests whose target storage
// is Azure Blob: a real Azurite (store/azblob/azuritetest) with the
// account key in a file, as an operator keeps it; containers made as an
// operator makes them; a lifeboat-server in process on a store over it,
// with a machine registered; and the check that a page blob is the fixed
// VHD of a disk, as qemu-img reads it.
//
// It owns only what the tests of cmd/lifeboat and cmd/lifeboat-server
// share: how each opens its store over the rig is what those tests check,
// so it stays in them. Like httptest, it is for tests only and must never
// be linked into a program; it never talks to Azure.
package blobrig
