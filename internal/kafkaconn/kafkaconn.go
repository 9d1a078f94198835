// Package kafkaconn reads how to reach a secured Kafka cluster (TLS and
// SASL) from the environment and from files, for job binaries and the weir
// CLI alike, and turns it into franz-go options.
//
// Secrets never come from command-line flags (a process's command line is
// world-readable): a password or token is read from a variable or, better,
// from a file (a Kubernetes Secret mounted as files). Files are read again
// at every new connection, so a rotated certificate, password or token is
// used from the next connection on, with no restart. Nothing a Settings
// prints (String, errors) contains a secret.
//
// The variables:
//
//	WEIR_KAFKA_TLS                  true: TLS with the system's CA pool (implied by the files below)
//	WEIR_KAFKA_TLS_CA_FILE          PEM CA certificates to trust instead of the system's
//	WEIR_KAFKA_TLS_CERT_FILE        PEM client certificate (mutual TLS), with
//	WEIR_KAFKA_TLS_KEY_FILE         its PEM private key
//	WEIR_KAFKA_TLS_SERVER_NAME      the name the brokers' certificates must carry (default: the host dialed)
//	WEIR_KAFKA_SASL_MECHANISM       PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER
//	WEIR_KAFKA_SASL_USERNAME[_FILE] the user (PLAIN, SCRAM)
//	WEIR_KAFKA_SASL_PASSWORD[_FILE] its password (PLAIN, SCRAM)
//	WEIR_KAFKA_SASL_TOKEN[_FILE]    the bearer token (OAUTHBEARER)
package kafkaconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms Weir speaks.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	OAuthBearer = "OAUTHBEARER"
)

// Settings are a client's TLS and SASL settings.
type Settings struct {
	TLS        bool
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string

	Mechanism string
	// Username, Password and Token are given either inline (from a
	// variable) or as a file read at every connection.
	Username, UsernameFile string
	Password, PasswordFile string
	Token, TokenFile       string
}

// Lookup finds a variable, as os.LookupEnv does.
type Lookup func(string) (string, bool)

// FromEnv reads the settings from the WEIR_KAFKA_* variables, and checks
// them (Check).
func FromEnv(lookup Lookup) (Settings, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	var s Settings
	var errs []error
	if v := get("WEIR_KAFKA_TLS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("WEIR_KAFKA_TLS=%q: want true or false", v))
		}
		s.TLS = b
	}
	s.CAFile = get("WEIR_KAFKA_TLS_CA_FILE")
	s.CertFile = get("WEIR_KAFKA_TLS_CERT_FILE")
	s.KeyFile = get("WEIR_KAFKA_TLS_KEY_FILE")
	s.ServerName = get("WEIR_KAFKA_TLS_SERVER_NAME")
	s.Mechanism = strings.ToUpper(get("WEIR_KAFKA_SASL_MECHANISM"))
	s.Username, s.UsernameFile = get("WEIR_KAFKA_SASL_USERNAME"), get("WEIR_KAFKA_SASL_USERNAME_FILE")
	// Secrets are taken as they are: a password may end in a space.
	s.Password, _ = lookup("WEIR_KAFKA_SASL_PASSWORD")
	s.PasswordFile = get("WEIR_KAFKA_SASL_PASSWORD_FILE")
	s.Token, _ = lookup("WEIR_KAFKA_SASL_TOKEN")
	s.TokenFile = get("WEIR_KAFKA_SASL_TOKEN_FILE")
	if err := s.Check(); err != nil {
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

// tlsOn reports whether the client dials with TLS.
func (s Settings) tlsOn() bool {
	return s.TLS || s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" || s.ServerName != ""
}

// Check reports settings that cannot work: a mechanism Weir does not
// know, credentials missing or given twice, a certificate without its
// key, a file that cannot be read now. It names variables and files,
// never a secret.
func (s Settings) Check() error {
	var errs []error
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, errors.New("WEIR_KAFKA_TLS_CERT_FILE and WEIR_KAFKA_TLS_KEY_FILE go together: set both or neither"))
	}
	both := func(name, inline, file string) {
		if inline != "" && file != "" {
			errs = append(errs, fmt.Errorf("%s and %s_FILE are both set: set one", name, name))
		}
	}
	both("WEIR_KAFKA_SASL_USERNAME", s.Username, s.UsernameFile)
	both("WEIR_KAFKA_SASL_PASSWORD", s.Password, s.PasswordFile)
	both("WEIR_KAFKA_SASL_TOKEN", s.Token, s.TokenFile)
	need := func(name, inline, file string) {
		if inline == "" && file == "" {
			errs = append(errs, fmt.Errorf("SASL %s needs %s or %s_FILE", s.Mechanism, name, name))
		}
	}
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.UsernameFile != "" || s.Password != "" || s.PasswordFile != "" || s.Token != "" || s.TokenFile != "" {
			errs = append(errs, errors.New("SASL credentials are set but WEIR_KAFKA_SASL_MECHANISM is not: set it to PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"))
		}
	case Plain, ScramSHA256, ScramSHA512:
		need("WEIR_KAFKA_SASL_USERNAME", s.Username, s.UsernameFile)
		need("WEIR_KAFKA_SASL_PASSWORD", s.Password, s.PasswordFile)
	case OAuthBearer:
		need("WEIR_KAFKA_SASL_TOKEN", s.Token, s.TokenFile)
	default:
		errs = append(errs, fmt.Errorf("WEIR_KAFKA_SASL_MECHANISM=%q: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", s.Mechanism))
	}
	if len(errs) == 0 {
		// Read everything once now, so that a missing file or a bad
		// certificate stops the process at start, not at its first dial.
		if s.tlsOn() {
			if _, err := s.tlsConfig(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, f := range []struct{ name, file string }{
			{"WEIR_KAFKA_SASL_USERNAME_FILE", s.UsernameFile},
			{"WEIR_KAFKA_SASL_PASSWORD_FILE", s.PasswordFile},
			{"WEIR_KAFKA_SASL_TOKEN_FILE", s.TokenFile},
		} {
			if f.file != "" {
				if _, err := readSecret(f.name, f.file); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// String describes the settings for a log line or a printed
// configuration: which files and which user, never a password or token.
func (s Settings) String() string {
	var parts []string
	if s.tlsOn() {
		t := "tls"
		if s.CAFile != "" {
			t += " ca=" + s.CAFile
		} else {
			t += " ca=system"
		}
		if s.CertFile != "" {
			t += " cert=" + s.CertFile + " key=" + s.KeyFile
		}
		if s.ServerName != "" {
			t += " server-name=" + s.ServerName
		}
		parts = append(parts, t)
	} else {
		parts = append(parts, "plaintext")
	}
	switch s.Mechanism {
	case "":
	case OAuthBearer:
		src := "variable"
		if s.TokenFile != "" {
			src = "file " + s.TokenFile
		}
		parts = append(parts, "sasl "+s.Mechanism+" token from "+src)
	default:
		src := "variable"
		if s.PasswordFile != "" {
			src = "file " + s.PasswordFile
		}
		user := s.Username
		if s.UsernameFile != "" {
			user = "(from file " + s.UsernameFile + ")"
		}
		parts = append(parts, fmt.Sprintf("sasl %s user %s, password from %s", s.Mechanism, user, src))
	}
	return strings.Join(parts, ", ")
}

// Principal is the Kafka principal the settings authenticate as
// ("User:alice"), or "" when it is not known here (no SASL, a token, or
// a client certificate, whose principal the broker derives).
func (s Settings) Principal() string {
	switch s.Mechanism {
	case Plain, ScramSHA256, ScramSHA512:
		user := s.Username
		if s.UsernameFile != "" {
			u, err := readSecret("WEIR_KAFKA_SASL_USERNAME_FILE", s.UsernameFile)
			if err != nil {
				return ""
			}
			user = u
		}
		return "User:" + user
	}
	return ""
}

// Opts returns the franz-go options for the settings: a dialer that
// reads the TLS files again when they change, and a SASL mechanism that
// reads its credentials at every authentication. None when the settings
// are empty.
func (s Settings) Opts() []kgo.Opt {
	var opts []kgo.Opt
	if s.tlsOn() {
		d := &tlsDialer{s: s}
		opts = append(opts, kgo.Dialer(d.DialContext))
	}
	if m := s.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts
}

func (s Settings) mechanism() sasl.Mechanism {
	userPass := func() (user, pass string, err error) {
		user, pass = s.Username, s.Password
		if s.UsernameFile != "" {
			if user, err = readSecret("WEIR_KAFKA_SASL_USERNAME_FILE", s.UsernameFile); err != nil {
				return "", "", err
			}
		}
		if s.PasswordFile != "" {
			if pass, err = readSecret("WEIR_KAFKA_SASL_PASSWORD_FILE", s.PasswordFile); err != nil {
				return "", "", err
			}
		}
		return user, pass, nil
	}
	switch s.Mechanism {
	case Plain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			u, p, err := userPass()
			return plain.Auth{User: u, Pass: p}, err
		})
	case ScramSHA256, ScramSHA512:
		fn := func(context.Context) (scram.Auth, error) {
			u, p, err := userPass()
			return scram.Auth{User: u, Pass: p}, err
		}
		if s.Mechanism == ScramSHA256 {
			return scram.Sha256(fn)
		}
		return scram.Sha512(fn)
	case OAuthBearer:
		return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
			tok := s.Token
			if s.TokenFile != "" {
				var err error
				if tok, err = readSecret("WEIR_KAFKA_SASL_TOKEN_FILE", s.TokenFile); err != nil {
					return oauth.Auth{}, err
				}
			}
			return oauth.Auth{Token: tok}, nil
		})
	}
	return nil
}

// readSecret reads a secret file, without its trailing newline (a Secret
// written with echo has one). Its error names the variable and the file,
// never the content.
func readSecret(name, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", name, file)
	}
	return v, nil
}

// tlsConfig reads the TLS files into a config.
func (s Settings) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("WEIR_KAFKA_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("WEIR_KAFKA_TLS_CA_FILE: %s holds no PEM certificate", s.CAFile)
		}
		cfg.RootCAs = pool
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			// crypto/tls's errors name no key material.
			return nil, fmt.Errorf("WEIR_KAFKA_TLS_CERT_FILE and _KEY_FILE (%s, %s): %w", s.CertFile, s.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// tlsDialer dials with a TLS config it builds again when one of its files
// changed since the last dial: a rotated certificate serves from the next
// connection on.
type tlsDialer struct {
	s Settings

	mu    sync.Mutex
	cfg   *tls.Config
	stamp []byte // the files' sizes and modification times
}

func (d *tlsDialer) current() (*tls.Config, error) {
	var stamp bytes.Buffer
	for _, f := range []string{d.s.CAFile, d.s.CertFile, d.s.KeyFile} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(&stamp, "%s:?;", f)
			continue
		}
		fmt.Fprintf(&stamp, "%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg != nil && bytes.Equal(stamp.Bytes(), d.stamp) {
		return d.cfg, nil
	}
	cfg, err := d.s.tlsConfig()
	if err != nil {
		if d.cfg != nil {
			// A rotation caught half-written: keep the last good config.
			return d.cfg, nil
		}
		return nil, err
	}
	d.cfg, d.stamp = cfg, stamp.Bytes()
	return cfg, nil
}

// DialContext is kgo.Dialer's function.
func (d *tlsDialer) DialContext(ctx context.Context, network, host string) (net.Conn, error) {
	cfg, err := d.current()
	if err != nil {
		return nil, err
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			return nil, fmt.Errorf("dialing %s: %w", host, err)
		}
		cfg.ServerName = h
	}
	td := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	return td.DialContext(ctx, network, host)
}
