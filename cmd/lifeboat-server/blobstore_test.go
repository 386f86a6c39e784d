package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/lifeboat-dr/lifeboat/store/azblob/azuritetest"
)

// TestInitBlobStore: 'init --store azblob://…' against a real Azurite
// prepares the container, and fails fast with the remedy on a missing
// container, a wrong key and an unreachable endpoint, never showing the
// key.
func TestInitBlobStore(t *testing.T) {
	az := azuritetest.Start(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	cs := "DefaultEndpointsProtocol=http;AccountName=" + azuritetest.Account + ";AccountKey=" + azuritetest.Key + ";BlobEndpoint=" + az.Endpoint + ";"
	if err := os.WriteFile(creds, []byte(cs), 0o600); err != nil {
		t.Fatal(err)
	}
	badKey := "AAAA" + azuritetest.Key[4:]
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte(badKey), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(az.Endpoint+"/ready", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
		err := m.Run(context.Background(), append([]string{"init", "--data", filepath.Join(t.TempDir(), "d")}, args...))
		return out.String(), err
	}
	out, err := run("--store", "azblob://devstoreaccount1/ready", "--store-credentials", creds)
	if err != nil || !strings.Contains(out, "target storage ready") {
		t.Fatalf("init with a ready container: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"missing container", []string{"--store", "azblob://devstoreaccount1/nosuch", "--store-credentials", creds}, "create container nosuch"},
		{"wrong key", []string{"--store", "azblob://devstoreaccount1/ready", "--store-endpoint", az.Endpoint, "--store-credentials", bad}, "authentication failed"},
		{"no credentials", []string{"--store", "azblob://devstoreaccount1/ready", "--store-endpoint", az.Endpoint}, "AZURE_STORAGE_CONNECTION_STRING"},
		{"unreachable", []string{"--store", "azblob://devstoreaccount1/ready", "--store-endpoint", "http://127.0.0.1:1/devstoreaccount1", "--store-credentials", bad}, "reachable"},
	} {
		start := time.Now()
		_, err := run(c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), azuritetest.Key) || strings.Contains(err.Error(), badKey) {
			t.Errorf("%s: the error shows the key", c.name)
		}
		if d := time.Since(start); d > time.Minute {
			t.Errorf("%s: took %v", c.name, d)
		}
		t.Logf("%s (%v): %v", c.name, time.Since(start).Round(time.Millisecond), err)
	}
	// --store-create-container creates a missing one.
	if _, err := run("--store", "azblob://devstoreaccount1/made", "--store-credentials", creds, "--store-create-container"); err != nil {
		t.Fatalf("init --store-create-container: %v", err)
	}
	if _, err := run("--store", "azblob://devstoreaccount1/made", "--store-credentials", creds); err != nil {
		t.Fatalf("init after the container was created: %v", err)
	}
	// The environment works as a credential source too.
	env["AZURE_STORAGE_CONNECTION_STRING"] = cs
	if _, err := run("--store", "azblob://devstoreaccount1/ready"); err != nil {
		t.Fatalf("credentials from the environment: %v", err)
	}
}
