package kafkaconn

import (
	"context"
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/internal/testcerts"
)

func env(vars map[string]string) Lookup {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFromEnvRejectsWhatCannotWork(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "s3cret-pw\n")
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"unknown mechanism", map[string]string{"WEIR_KAFKA_SASL_MECHANISM": "GSSAPI"}, `WEIR_KAFKA_SASL_MECHANISM="GSSAPI"`},
		{"no password", map[string]string{"WEIR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "WEIR_KAFKA_SASL_USERNAME": "u"}, "needs WEIR_KAFKA_SASL_PASSWORD or WEIR_KAFKA_SASL_PASSWORD_FILE"},
		{"password twice", map[string]string{"WEIR_KAFKA_SASL_MECHANISM": "PLAIN", "WEIR_KAFKA_SASL_USERNAME": "u",
			"WEIR_KAFKA_SASL_PASSWORD": "s3cret-pw", "WEIR_KAFKA_SASL_PASSWORD_FILE": pw}, "both set"},
		{"credentials without mechanism", map[string]string{"WEIR_KAFKA_SASL_USERNAME": "u", "WEIR_KAFKA_SASL_PASSWORD": "s3cret-pw"}, "WEIR_KAFKA_SASL_MECHANISM is not"},
		{"missing password file", map[string]string{"WEIR_KAFKA_SASL_MECHANISM": "PLAIN", "WEIR_KAFKA_SASL_USERNAME": "u",
			"WEIR_KAFKA_SASL_PASSWORD_FILE": filepath.Join(dir, "nope")}, "WEIR_KAFKA_SASL_PASSWORD_FILE: open"},
		{"token missing", map[string]string{"WEIR_KAFKA_SASL_MECHANISM": "oauthbearer"}, "needs WEIR_KAFKA_SASL_TOKEN"},
		{"cert without key", map[string]string{"WEIR_KAFKA_TLS_CERT_FILE": pw}, "go together"},
		{"not a CA", map[string]string{"WEIR_KAFKA_TLS_CA_FILE": pw}, "holds no PEM certificate"},
		{"bad bool", map[string]string{"WEIR_KAFKA_TLS": "yes please"}, "WEIR_KAFKA_TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromEnv(env(tc.vars))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestStringNeverShowsASecret(t *testing.T) {
	dir := t.TempDir()
	for _, vars := range []map[string]string{
		{"WEIR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "WEIR_KAFKA_SASL_USERNAME": "alice", "WEIR_KAFKA_SASL_PASSWORD": "s3cret-pw"},
		{"WEIR_KAFKA_SASL_MECHANISM": "PLAIN", "WEIR_KAFKA_SASL_USERNAME": "alice", "WEIR_KAFKA_SASL_PASSWORD_FILE": writeFile(t, dir, "pw", "s3cret-pw")},
		{"WEIR_KAFKA_SASL_MECHANISM": "OAUTHBEARER", "WEIR_KAFKA_SASL_TOKEN": "s3cret-pw", "WEIR_KAFKA_TLS": "true"},
	} {
		s, err := FromEnv(env(vars))
		if err != nil {
			t.Fatal(err)
		}
		str := s.String()
		if strings.Contains(str, "s3cret-pw") || !strings.Contains(str, "sasl "+vars["WEIR_KAFKA_SASL_MECHANISM"]) {
			t.Fatalf("String() = %q", str)
		}
	}
	s, _ := FromEnv(env(nil))
	if s.String() != "plaintext" || len(s.Opts()) != 0 {
		t.Fatalf("empty settings: %q, %d options", s.String(), len(s.Opts()))
	}
}

// TestSecretsAreReadAtEveryConnection: a rotated password file is what
// the next authentication sends.
func TestSecretsAreReadAtEveryConnection(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "first\n")
	user := writeFile(t, dir, "user", "alice")
	s, err := FromEnv(env(map[string]string{"WEIR_KAFKA_SASL_MECHANISM": "PLAIN",
		"WEIR_KAFKA_SASL_USERNAME_FILE": user, "WEIR_KAFKA_SASL_PASSWORD_FILE": pw}))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Principal(); got != "User:alice" {
		t.Fatalf("principal %q", got)
	}
	auth := func() string {
		_, msg, err := s.mechanism().Authenticate(context.Background(), "127.0.0.1:9092")
		if err != nil {
			t.Fatal(err)
		}
		return string(msg)
	}
	if got := auth(); got != "\x00alice\x00first" {
		t.Fatalf("first authentication sends %q", got)
	}
	writeFile(t, dir, "pw", "second\n")
	if got := auth(); got != "\x00alice\x00second" {
		t.Fatalf("after rotation the authentication sends %q", got)
	}
}

// TestTLSFilesAreReadAgainWhenTheyChange: a client whose CA file is
// replaced trusts the new CA from its next connection on.
func TestTLSFilesAreReadAgainWhenTheyChange(t *testing.T) {
	dir := t.TempDir()
	serve := func(name string) (addr string, ca []byte) {
		c, err := testcerts.NewCA(name + "-ca")
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := c.Issue(name)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					_, _ = conn.Write([]byte("ok"))
					_, _ = io.Copy(io.Discard, conn)
				}()
			}
		}()
		return ln.Addr().String(), c.PEM
	}
	oldAddr, oldCA := serve("old")
	newAddr, newCA := serve("new")
	caFile := writeFile(t, dir, "ca.pem", string(oldCA))
	s, err := FromEnv(env(map[string]string{"WEIR_KAFKA_TLS_CA_FILE": caFile}))
	if err != nil {
		t.Fatal(err)
	}
	d := &tlsDialer{s: s}
	dial := func(addr string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		buf := make([]byte, 2)
		_, err = io.ReadFull(conn, buf)
		return err
	}
	if err := dial(oldAddr); err != nil {
		t.Fatalf("dialing the server the CA signed: %v", err)
	}
	if err := dial(newAddr); err == nil {
		t.Fatal("a server signed by another CA was trusted")
	}
	// Rotate: a new file, with a later modification time.
	writeFile(t, dir, "ca.pem", string(newCA))
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(caFile, later, later); err != nil {
		t.Fatal(err)
	}
	if err := dial(newAddr); err != nil {
		t.Fatalf("after the CA file was replaced: %v", err)
	}
	// A rotation caught half-written keeps the last good configuration.
	writeFile(t, dir, "ca.pem", "")
	if err := dial(newAddr); err != nil {
		t.Fatalf("with an empty CA file: %v", err)
	}
}
