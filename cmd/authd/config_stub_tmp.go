package main

import "time"

type config struct {
	Addr                  string
	DatabaseURL           string
	Issuer                string
	TokenTTL              time.Duration
	SigningAlg            string
	HMACSecret            string
	SecretPepper          string
	KeyEncryptionKey      string
	BootstrapClientID     string
	BootstrapClientSecret string
	TLSCertFile           string
	TLSKeyFile            string
	LogFormat             string
	LogLevel              string
	ShutdownTimeout       time.Duration
}

func loadConfig(p string) (config, error) { return config{}, nil }
func (c config) redacted() config         { return c }
