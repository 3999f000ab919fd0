package authsvc

import (
	"context"
	"strings"
	"time"
)

// Client is a registered client, as callers see it: never with its secret.
type Client struct {
	ID      string // client_id
	RowID   int64  // numeric id, the "id" claim of the seed service's tokens
	IsAdmin bool
	Scopes  []string
	// Audiences are the audiences (aud values, such as RFC 8707 resource
	// URIs) the client may request besides the default audience
	// (Config.DefaultAudience): a token request naming any other is
	// refused with ErrInvalidTarget. Empty means the default audience only.
	Audiences []string
	// TokensValidAfter is the per-client cut-off: tokens issued before it are
	// refused. Zero means none.
	TokensValidAfter time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time

	// AuthMethod is how the client authenticates, by its RFC 7591
	// token_endpoint_auth_method name: AuthSecretBasic (the default) or
	// AuthSecretPost, with its secret (sent either way: the name records
	// the client's preference), or AuthPrivateKeyJWT, with JWT assertions
	// only (RFC 7523 §2.2): it has no secret.
	AuthMethod string
	// JWKS is a private_key_jwt client's public keys, a JWK Set (RFC 7517),
	// and JWKSURI where they are fetched from instead; at most one is set.
	JWKS    []byte
	JWKSURI string
	// FederatedCredentials are the (issuer, subject) pairs whose tokens,
	// from a trusted issuer, authenticate as this client.
	FederatedCredentials []FederatedCredential

	// DPoPBoundAccessTokens (RFC 9449 §5.2's dpop_bound_access_tokens)
	// makes a DPoP proof mandatory at the token endpoint: the client's
	// tokens are always bound to its DPoP key.
	DPoPBoundAccessTokens bool

	// TLSClientAuth is a tls_client_auth client's certificate name (RFC
	// 8705 §2.1.2); zero for every other client.
	TLSClientAuth TLSClientAuth
	// TLSClientCertificateBoundAccessTokens (RFC 8705 §3.4's
	// tls_client_certificate_bound_access_tokens) makes a TLS client
	// certificate mandatory at the token endpoint: the client's tokens are
	// always bound to it. Without it a client's token is bound to the
	// certificate it presents, if it presents one.
	TLSClientCertificateBoundAccessTokens bool
}

// Client authentication methods (RFC 7591 token_endpoint_auth_method);
// also AuthTLSClient and AuthSelfSignedTLSClient (mtls.go).
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthSecretPost    = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
)

// AuthMethods are the client authentication methods always accepted, as
// discovery's token_endpoint_auth_methods_supported lists them; the mTLS
// ones are added when enabled (Authenticator.TLSClientAuthMethods).
var AuthMethods = []string{AuthSecretBasic, AuthSecretPost, AuthPrivateKeyJWT}

// secretless reports whether clients of auth method m have no secret.
func secretless(m string) bool {
	return m == AuthPrivateKeyJWT || m == AuthTLSClient || m == AuthSelfSignedTLSClient
}

// FederatedCredential names a workload by the token its platform gives it:
// a token of the trusted issuer Issuer whose sub is Subject authenticates
// as the client that has the credential, such as
// ("https://kubernetes.default.svc.cluster.local",
// "system:serviceaccount:payments:api") or, for a SPIFFE trust domain,
// ("spiffe://example.org", "spiffe://example.org/ns/payments/sa/api").
type FederatedCredential struct {
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
}

// NewClient is what CreateClient needs.
type NewClient struct {
	// ID is the client_id: 1-128 characters of printable ASCII without
	// spaces ('!' to '~'). Imported clients (ImportClient) may have others.
	ID string
	// Secret chosen by the caller, hashed with argon2id: at least 16
	// characters, not only white space, at least 5 different characters,
	// and not a shorter string repeated. Empty means the server generates
	// one (32 random bytes).
	Secret  string
	IsAdmin bool
	Scopes  []string
	// Audiences the client may request besides the default one (see
	// Client.Audiences): each 1-512 bytes of printable UTF-8 without
	// spaces, at most MaxClientAudiences.
	Audiences []string
	// RowID, when non-zero, asks for that numeric id (used to import the
	// seed service's clients so their "id" claim is unchanged).
	RowID int64

	// AuthMethod is Client.AuthMethod; empty means AuthSecretBasic. A
	// AuthPrivateKeyJWT client gets no secret (Secret must be empty) and
	// needs JWKS, JWKSURI or FederatedCredentials; nor does an
	// AuthTLSClient client, which needs TLSClientAuth, or an
	// AuthSelfSignedTLSClient client, which needs JWKS or JWKSURI.
	AuthMethod string
	// JWKS (a JWK Set of public keys: Ed25519, P-256 or RSA of 2048 bits
	// or more) or JWKSURI (an https URL; http only to a loopback address)
	// of a private_key_jwt or self_signed_tls_client_auth client.
	JWKS    []byte
	JWKSURI string
	// FederatedCredentials of the client (see FederatedCredential); each
	// issuer must be trusted already (AddTrustedIssuer), and each pair may
	// belong to one client only.
	FederatedCredentials []FederatedCredential
	// DPoPBoundAccessTokens is Client.DPoPBoundAccessTokens.
	DPoPBoundAccessTokens bool
	// TLSClientAuth is Client.TLSClientAuth: one name, for a
	// tls_client_auth client only.
	TLSClientAuth TLSClientAuth
	// TLSClientCertificateBoundAccessTokens is
	// Client.TLSClientCertificateBoundAccessTokens.
	TLSClientCertificateBoundAccessTokens bool
}

// CreateClient registers a client and returns it with its secret. The secret
// is returned only here: the store keeps a hash.
func (a *Authenticator) CreateClient(ctx context.Context, nc NewClient) (*Client, string, error) {
	if err := checkNewClientID(nc.ID); err != nil {
		return nil, "", err
	}
	scopes, err := NormalizeScopes(nc.Scopes)
	if err != nil {
		return nil, "", err
	}
	audiences, err := normalizeClientAudiences(nc.Audiences)
	if err != nil {
		return nil, "", err
	}
	if nc.RowID < 0 {
		return nil, "", refuse(ErrInvalidArgument, "negative row id")
	}
	auth, err := a.normalizeClientAuth(ctx, clientAuth{nc.AuthMethod, nc.JWKS, nc.JWKSURI, nc.FederatedCredentials, nc.TLSClientAuth})
	if err != nil {
		return nil, "", err
	}
	var secret, hash string
	if secretless(auth.method) {
		if nc.Secret != "" {
			return nil, "", refuse(ErrInvalidArgument, "a %s client has no secret: give its keys or certificate name instead", auth.method)
		}
	} else if secret, hash, err = a.newSecret(nc.Secret); err != nil {
		return nil, "", err
	}
	now := a.now().UTC().Truncate(time.Second)
	rec := &clientRecord{
		Client: Client{
			ID: nc.ID, RowID: nc.RowID, IsAdmin: nc.IsAdmin, Scopes: scopes, Audiences: audiences,
			CreatedAt: now, UpdatedAt: now, DPoPBoundAccessTokens: nc.DPoPBoundAccessTokens,
			TLSClientCertificateBoundAccessTokens: nc.TLSClientCertificateBoundAccessTokens,
		},
		SecretHash: hash,
	}
	auth.apply(rec)
	if err := checkClientAuth(rec); err != nil {
		return nil, "", err
	}
	if err := a.store.createClient(ctx, rec); err != nil {
		return nil, "", err
	}
	a.state.putClient(rec.ID, rec)
	a.catchUpNow()
	c := rec.Client
	return &c, secret, nil
}

// Client returns the client with that client_id, or ErrClientNotFound. It
// answers from memory when it can (kept current as Verify's checks are).
func (a *Authenticator) Client(ctx context.Context, clientID string) (*Client, error) {
	rec, err := a.lookupClient(ctx, clientID)
	if err != nil {
		return nil, err
	}
	c := rec.Client
	return &c, nil
}

// Clients lists every client, ordered by client_id, in one slice: fine for
// a few thousand; page through a large store with ListClients.
func (a *Authenticator) Clients(ctx context.Context) ([]Client, error) {
	recs, err := a.store.clients(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Client, len(recs))
	for i := range recs {
		out[i] = recs[i].Client
	}
	return out, nil
}

// ClientQuery asks ListClients for a page of clients.
type ClientQuery struct {
	// Prefix keeps the clients whose client_id starts with it.
	Prefix string
	// After is where the page starts: the previous page's Next; "" is the
	// first page.
	After string
	// Limit is the page's size: zero means DefaultClientPage, and more
	// than MaxClientPage is refused.
	Limit int
}

// ClientPage is a page of clients, in byte order of client_id.
type ClientPage struct {
	Clients []Client
	// Next is the After of the next page; "" when this page is the last.
	Next string
}

// Client page sizes.
const (
	DefaultClientPage = 100
	MaxClientPage     = 1000
)

// ListClients returns a page of clients, ordered by client_id byte by
// byte: a page costs the same however many clients there are.
func (a *Authenticator) ListClients(ctx context.Context, q ClientQuery) (*ClientPage, error) {
	switch {
	case q.Limit == 0:
		q.Limit = DefaultClientPage
	case q.Limit < 0 || q.Limit > MaxClientPage:
		return nil, refuse(ErrInvalidArgument, "a page holds 1 to %d clients", MaxClientPage)
	}
	for _, s := range []string{q.Prefix, q.After} {
		if s != "" {
			if err := checkLookupID(s); err != nil {
				return nil, err
			}
		}
	}
	// One more than asked says whether there is a next page.
	recs, err := a.store.listClients(ctx, q.Prefix, q.After, q.Limit+1)
	if err != nil {
		return nil, err
	}
	page := &ClientPage{Clients: make([]Client, 0, min(len(recs), q.Limit))}
	for i := range recs {
		if i == q.Limit {
			page.Next = recs[i-1].ID
			break
		}
		page.Clients = append(page.Clients, recs[i].Client)
	}
	return page, nil
}

// DeleteClient removes a client. Its tokens are refused from then on, even
// those not yet expired: a compromised client is cut off at once.
func (a *Authenticator) DeleteClient(ctx context.Context, clientID string) error {
	if err := checkLookupID(clientID); err != nil {
		return err
	}
	if err := a.store.deleteClient(ctx, clientID); err != nil {
		return err
	}
	a.state.putClient(clientID, nil)
	a.catchUpNow()
	return nil
}

// ClientUpdate changes a client; nil fields are left as they are.
type ClientUpdate struct {
	IsAdmin   *bool
	Scopes    *[]string
	Audiences *[]string // replaces the list; an empty one allows the default audience only

	// AuthMethod switches between the secret methods, or to a method
	// without a secret (AuthPrivateKeyJWT, AuthTLSClient,
	// AuthSelfSignedTLSClient), which drops the client's secret (its secret
	// logins are refused from then on). Back to a secret, RotateSecret
	// gives the client one.
	AuthMethod *string
	// JWKS and JWKSURI replace the private_key_jwt client's keys; setting
	// one clears the other, an empty one clears it.
	JWKS    *[]byte
	JWKSURI *string
	// FederatedCredentials replaces the list.
	FederatedCredentials *[]FederatedCredential
	// DPoPBoundAccessTokens sets Client.DPoPBoundAccessTokens.
	DPoPBoundAccessTokens *bool
	// TLSClientAuth replaces the tls_client_auth client's certificate name
	// (a zero one clears it).
	TLSClientAuth *TLSClientAuth
	// TLSClientCertificateBoundAccessTokens sets
	// Client.TLSClientCertificateBoundAccessTokens.
	TLSClientCertificateBoundAccessTokens *bool
}

// UpdateClient changes a client's admin flag, scopes or audiences. Tokens
// already issued keep the claims they were issued with; admin rights are
// checked against the current record by authd's admin routes.
func (a *Authenticator) UpdateClient(ctx context.Context, clientID string, u ClientUpdate) (*Client, error) {
	var scopes, audiences []string
	var err error
	if u.Scopes != nil {
		if scopes, err = NormalizeScopes(*u.Scopes); err != nil {
			return nil, err
		}
	}
	if u.Audiences != nil {
		if audiences, err = normalizeClientAudiences(*u.Audiences); err != nil {
			return nil, err
		}
	}
	var ca clientAuth
	if u.AuthMethod != nil {
		if ca.method, err = normalizeAuthMethod(*u.AuthMethod); err != nil {
			return nil, err
		}
	}
	if u.JWKS != nil && len(*u.JWKS) > 0 {
		if ca.jwks, err = normalizeClientJWKS(*u.JWKS); err != nil {
			return nil, err
		}
	}
	if u.JWKSURI != nil && *u.JWKSURI != "" {
		if err = checkJWKSURI("jwks_uri", *u.JWKSURI); err != nil {
			return nil, err
		}
	}
	if u.FederatedCredentials != nil {
		if ca.federated, err = a.normalizeFederated(ctx, *u.FederatedCredentials); err != nil {
			return nil, err
		}
	}
	if u.TLSClientAuth != nil {
		if ca.tls, err = normalizeTLSClientAuth(*u.TLSClientAuth); err != nil {
			return nil, err
		}
	}
	return a.updateClient(ctx, clientID, ActionClientUpdated, func(rec *clientRecord) error {
		if u.IsAdmin != nil {
			rec.IsAdmin = *u.IsAdmin
		}
		if u.Scopes != nil {
			rec.Scopes = scopes
		}
		if u.Audiences != nil {
			rec.Audiences = audiences
		}
		if u.AuthMethod != nil && ca.method != rec.AuthMethod {
			switch {
			case secretless(ca.method):
				// No secret any more: its logins are refused from now on.
				rec.SecretHash, rec.OldSecretHash, rec.OldSecretExpiresAt = "", "", time.Time{}
			case secretless(rec.AuthMethod):
				return refuse(ErrInvalidArgument, "client %s has no secret: rotating its secret gives it one (and makes it a client_secret_basic client)", rec.ID)
			}
			rec.AuthMethod = ca.method
		}
		if u.JWKS != nil {
			rec.JWKS = ca.jwks
			if len(ca.jwks) > 0 {
				rec.JWKSURI = ""
			}
		}
		if u.JWKSURI != nil {
			rec.JWKSURI = *u.JWKSURI
			if rec.JWKSURI != "" {
				rec.JWKS = nil
			}
		}
		if u.FederatedCredentials != nil {
			rec.FederatedCredentials = ca.federated
		}
		if u.DPoPBoundAccessTokens != nil {
			rec.DPoPBoundAccessTokens = *u.DPoPBoundAccessTokens
		}
		if u.TLSClientAuth != nil {
			rec.TLSClientAuth = ca.tls
		}
		if u.TLSClientCertificateBoundAccessTokens != nil {
			rec.TLSClientCertificateBoundAccessTokens = *u.TLSClientCertificateBoundAccessTokens
		}
		return checkClientAuth(rec)
	})
}

// updateClient applies f in the store and in memory, logged as action.
func (a *Authenticator) updateClient(ctx context.Context, clientID, action string, f func(*clientRecord) error) (*Client, error) {
	if err := checkLookupID(clientID); err != nil {
		return nil, err
	}
	rec, err := a.store.updateClient(ctx, clientID, action, f)
	if err != nil {
		return nil, err
	}
	a.state.putClient(clientID, rec)
	a.catchUpNow()
	c := rec.Client
	return &c, nil
}

// LogoutClient logs a client out everywhere: every token of it issued
// before now is refused from now on, on every instance. Tokens issued in
// the same second as the call are refused too (iat has a resolution of one
// second, and refusing a few too many is the safe side).
func (a *Authenticator) LogoutClient(ctx context.Context, clientID string) (*Client, error) {
	cutoff := a.now().Truncate(time.Second).Add(time.Second)
	return a.updateClient(ctx, clientID, ActionClientLoggedOut, func(rec *clientRecord) error {
		if cutoff.After(rec.TokensValidAfter) {
			rec.TokensValidAfter = cutoff
		}
		return nil
	})
}

// RotateSecret options.
type RotateSecret struct {
	// Secret is the new secret, with NewClient.Secret's rules; empty means
	// generate one.
	Secret string
	// Grace keeps the previous secret valid this long, so a fleet of
	// callers can switch without an outage. Zero ends it at once.
	Grace time.Duration
	// LogoutEverywhere also refuses every token issued so far.
	LogoutEverywhere bool
}

// RotateSecret gives a client a new secret and returns it. Tokens issued
// before stay valid unless LogoutEverywhere is set.
func (a *Authenticator) RotateSecret(ctx context.Context, clientID string, opt RotateSecret) (*Client, string, error) {
	if err := checkLookupID(clientID); err != nil {
		return nil, "", err
	}
	if opt.Grace < 0 {
		return nil, "", refuse(ErrInvalidArgument, "negative grace period")
	}
	secret, hash, err := a.newSecret(opt.Secret)
	if err != nil {
		return nil, "", err
	}
	now := a.now()
	c, err := a.updateClient(ctx, clientID, ActionSecretRotated, func(rec *clientRecord) error {
		if secretless(rec.AuthMethod) {
			// Its first secret: it becomes a secret client, its keys and
			// certificate name are dropped (its federated credentials stay).
			rec.AuthMethod, rec.JWKS, rec.JWKSURI, rec.TLSClientAuth = AuthSecretBasic, nil, "", TLSClientAuth{}
			rec.SecretHash, rec.OldSecretHash, rec.OldSecretExpiresAt = "", "", time.Time{}
		}
		rec.OldSecretHash, rec.OldSecretExpiresAt = "", time.Time{}
		if opt.Grace > 0 && rec.SecretHash != "" {
			rec.OldSecretHash, rec.OldSecretExpiresAt = rec.SecretHash, now.Add(opt.Grace).UTC()
		}
		rec.SecretHash = hash
		if opt.LogoutEverywhere {
			rec.TokensValidAfter = now.Truncate(time.Second).Add(time.Second)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return c, secret, nil
}

// newSecret hashes a chosen secret, or generates one when chosen is empty.
func (a *Authenticator) newSecret(chosen string) (secret, hash string, err error) {
	if chosen == "" {
		if secret, err = generateSecret(); err != nil {
			return "", "", err
		}
		return secret, a.hasher.hashGenerated(secret), nil
	}
	if hash, err = a.hasher.hashChosen(chosen); err != nil {
		if isChosenSecretRefusal(err) {
			// The caller's mistake, in words fit for the caller.
			return "", "", &Error{Kind: ErrInvalidArgument, Message: strings.TrimPrefix(err.Error(), "authsvc: "), Err: err}
		}
		return "", "", err // ours (no randomness for a salt): a 500 that says nothing
	}
	return chosen, hash, nil
}

// lookupClient returns a client's record from the cache in memory, or
// from the store (and caches it) when the cache does not have it: not used
// lately, or created a moment ago elsewhere.
func (a *Authenticator) lookupClient(ctx context.Context, clientID string) (*clientRecord, error) {
	if err := checkLookupID(clientID); err != nil {
		return nil, err
	}
	if rec := a.state.client(clientID); rec != nil {
		return rec, nil
	}
	version := a.state.versionOfClients()
	rec, err := a.store.client(ctx, clientID)
	if err != nil {
		return nil, err
	}
	a.state.fillClient(clientID, rec, version)
	return rec, nil
}
