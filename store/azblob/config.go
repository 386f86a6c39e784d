package azblob

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// Scheme starts a --store value that names an Azure Blob Storage container.
const Scheme = "azblob://"

// Environment variables read for credentials when no credentials file is
// given, as the Azure tools name them.
const (
	EnvConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
	EnvAccount          = "AZURE_STORAGE_ACCOUNT"
	EnvKey              = "AZURE_STORAGE_KEY"
)

// Location is where a store lives: an account, a container in it and the
// account's blob endpoint.
type Location struct {
	Account   string
	Container string
	// Endpoint is the account's blob service URL, without a trailing
	// slash: https://ACCOUNT.blob.core.windows.net unless overridden (an
	// emulator, a sovereign cloud).
	Endpoint string
}

// ContainerURL is the URL of the store's container.
func (l Location) ContainerURL() string { return l.Endpoint + "/" + l.Container }

// IsURL reports whether a --store value names a blob container.
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseURL parses azblob://ACCOUNT/CONTAINER. endpoint, when not "",
// overrides the account's default endpoint.
func ParseURL(s, endpoint string) (Location, error) {
	if !IsURL(s) {
		return Location{}, fmt.Errorf("store %q: want %sACCOUNT/CONTAINER", s, Scheme)
	}
	rest := strings.TrimSuffix(strings.TrimPrefix(s, Scheme), "/")
	account, container, ok := strings.Cut(rest, "/")
	if !ok || account == "" || container == "" || strings.Contains(container, "/") {
		return Location{}, fmt.Errorf("store %q: want %sACCOUNT/CONTAINER", s, Scheme)
	}
	if err := checkAccount(account); err != nil {
		return Location{}, fmt.Errorf("store %q: %w", s, err)
	}
	if err := checkContainer(container); err != nil {
		return Location{}, fmt.Errorf("store %q: %w", s, err)
	}
	loc := Location{Account: account, Container: container, Endpoint: "https://" + account + ".blob.core.windows.net"}
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
			return Location{}, fmt.Errorf("store endpoint %q: want http(s)://HOST[:PORT][/PATH], without credentials or query", endpoint)
		}
		loc.Endpoint = strings.TrimSuffix(endpoint, "/")
	}
	return loc, nil
}

// checkAccount checks an account name as Azure allows it, plus the
// emulator's devstoreaccount1: 3 to 24 lowercase letters and digits.
func checkAccount(a string) error {
	if len(a) < 3 || len(a) > 24 {
		return fmt.Errorf("account %q: want 3 to 24 lowercase letters and digits", a)
	}
	for _, c := range a {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return fmt.Errorf("account %q: want 3 to 24 lowercase letters and digits", a)
		}
	}
	return nil
}

// checkContainer checks a container name as Azure allows it: 3 to 63
// lowercase letters, digits and single hyphens, starting and ending with a
// letter or digit.
func checkContainer(c string) error {
	bad := len(c) < 3 || len(c) > 63 || c[0] == '-' || c[len(c)-1] == '-' || strings.Contains(c, "--")
	for _, r := range c {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("container %q: want 3 to 63 lowercase letters, digits and single hyphens", c)
	}
	return nil
}

// Credential is a shared key of an account. Its String never shows the
// key.
type Credential struct {
	Account string
	key     string
	// Endpoint is the blob endpoint a connection string named ("" if
	// none).
	Endpoint string
	// Source says where it came from, for messages: a file name or an
	// environment variable, never the secret.
	Source string
}

func (c Credential) String() string { return "shared key of " + c.Account + " from " + c.Source }

// ErrNoCredential is wrapped when no credential is found.
var ErrNoCredential = errors.New("no credential for the blob store")

// LoadCredential finds the credential of account: from the file at path
// when path is not "" (a connection string, or an account key alone),
// else from AZURE_STORAGE_CONNECTION_STRING, else from AZURE_STORAGE_KEY
// (with AZURE_STORAGE_ACCOUNT, which must then name account). getenv
// reads the environment. Credentials never come from the command line.
func LoadCredential(account, path string, getenv func(string) string) (Credential, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Credential{}, fmt.Errorf("read store credentials: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if strings.Contains(s, "AccountKey=") || strings.Contains(s, "AccountName=") {
			return parseConnectionString(account, s, path)
		}
		return keyCredential(account, s, path)
	}
	if cs := strings.TrimSpace(getenv(EnvConnectionString)); cs != "" {
		return parseConnectionString(account, cs, EnvConnectionString)
	}
	if key := strings.TrimSpace(getenv(EnvKey)); key != "" {
		if a := getenv(EnvAccount); a != "" && a != account {
			return Credential{}, fmt.Errorf("%s names account %q, the store is in %q", EnvAccount, a, account)
		}
		return keyCredential(account, key, EnvKey)
	}
	return Credential{}, fmt.Errorf("%w of account %s: give --store-credentials FILE (a connection string or the account key), or set %s, or %s (and %s)",
		ErrNoCredential, account, EnvConnectionString, EnvKey, EnvAccount)
}

func keyCredential(account, key, source string) (Credential, error) {
	if _, err := base64.StdEncoding.DecodeString(key); err != nil || key == "" {
		return Credential{}, fmt.Errorf("credentials from %s: not a connection string nor a base64 account key", source)
	}
	return Credential{Account: account, key: key, Source: source}, nil
}

// parseConnectionString reads AccountName, AccountKey and BlobEndpoint of
// a connection string (semicolon-separated KEY=VALUE). Shared access
// signatures are not supported.
func parseConnectionString(account, cs, source string) (Credential, error) {
	var name, key, endpoint string
	for _, part := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "AccountName":
			name = v
		case "AccountKey":
			key = v
		case "BlobEndpoint":
			endpoint = strings.TrimSuffix(v, "/")
		}
	}
	if name == "" || key == "" {
		return Credential{}, fmt.Errorf("connection string from %s: want AccountName and AccountKey (shared access signatures are not supported)", source)
	}
	if name != account {
		return Credential{}, fmt.Errorf("connection string from %s is of account %q, the store is in %q", source, name, account)
	}
	c, err := keyCredential(account, key, source)
	c.Endpoint = endpoint
	return c, err
}
