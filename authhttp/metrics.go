package authhttp

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsvc/authsvc"
)

// metrics are authd's Prometheus metrics: HTTP requests by route and
// status, and the Authenticator's own counters (read from its Stats when
// scraped, so the hot paths only bump atomic counters).
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	throttled *prometheus.CounterVec
}

// newMetrics registers the metrics of a handler; t is its throttle (nil: off).
func newMetrics(a *authsvc.Authenticator, reg prometheus.Registerer, t *throttle) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "authd_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_throttled_total", Help: "Authentications refused with 429 by the brute-force limits, by the limit that refused (pair: one client_id from one address; address; client).",
		}, []string{"limit"}),
	}
	m.requests = register(reg, m.requests)
	m.duration = register(reg, m.duration)
	m.throttled = register(reg, m.throttled)
	for _, l := range limitNames {
		m.throttled.WithLabelValues(l) // every series from 0
	}
	register[prometheus.Collector](reg, statsCollector{a})
	if t != nil {
		register[prometheus.Collector](reg, throttleCollector{t.limits})
	}
	return m
}

// throttleCollector exports the throttle's limits (those not off), so that
// dashboards and alerts can read them beside authd_throttled_total.
type throttleCollector struct{ limits [numLimits]ThrottleLimit }

var (
	descThrottleBurst = prometheus.NewDesc("authd_throttle_burst", "Failed authentications a throttle limit allows at once (absent: the limit is off).", []string{"limit"}, nil)
	descThrottleEvery = prometheus.NewDesc("authd_throttle_interval_seconds", "Time a throttle limit takes to allow one more failed authentication.", []string{"limit"}, nil)
)

func (c throttleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descThrottleBurst
	ch <- descThrottleEvery
}

func (c throttleCollector) Collect(ch chan<- prometheus.Metric) {
	for d, l := range c.limits {
		if l.Off {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descThrottleBurst, prometheus.GaugeValue, float64(l.Burst), limitNames[d])
		ch <- prometheus.MustNewConstMetric(descThrottleEvery, prometheus.GaugeValue, l.Every.Seconds(), limitNames[d])
	}
}

// register registers c with reg, or returns the collector reg already has
// under its name (a second handler on one registry shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	var dup prometheus.AlreadyRegisteredError
	if errors.As(err, &dup) {
		if existing, ok := dup.ExistingCollector.(C); ok {
			return existing
		}
		panic(fmt.Sprintf("authhttp: another kind of collector is registered as %T: %v", c, err))
	}
	if err != nil {
		panic(fmt.Sprintf("authhttp: registering metrics: %v", err))
	}
	return c
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// methodLabel bounds the method label: a client may send any method, and
// each new label value would be a series kept in memory for ever.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// statsCollector exports authsvc.Stats.
type statsCollector struct{ a *authsvc.Authenticator }

var (
	descIssued   = prometheus.NewDesc("authd_tokens_issued_total", "Access tokens issued.", nil, nil)
	descFailures = prometheus.NewDesc("authd_authentication_failures_total", "Client authentications refused (unknown client or wrong secret).", nil, nil)
	descRevoked  = prometheus.NewDesc("authd_revocations_total", "Tokens logged out or revoked through this instance.", nil, nil)
	descVerify   = prometheus.NewDesc("authd_verifications_total", "Token verifications by result.", []string{"result"}, nil)
	descCache    = prometheus.NewDesc("authd_verify_cache_total", "Verifications answered from the verified-token cache (hit) or by a signature check (miss).", []string{"result"}, nil)
	descStore    = prometheus.NewDesc("authd_store_errors_total", "Operations refused because the store was unreachable.", nil, nil)
	descKeyAge   = prometheus.NewDesc("authd_signing_key_age_seconds", "Age of the key new tokens are signed with.", nil, nil)
	descKnown    = prometheus.NewDesc("authd_known_addresses", "(client_id, address) pairs with a successful authentication in the last 24 hours, in memory: exempt from the address and client throttle limits.", nil, nil)
	descKnownW   = prometheus.NewDesc("authd_known_address_writes_total", "Store writes of known (client_id, address) pairs, by result: ok, failed, dropped (queue full).", []string{"result"}, nil)
)

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIssued, descFailures, descRevoked, descVerify, descCache, descStore, descKeyAge, descKnown, descKnownW} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.a.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descIssued, s.TokensIssued)
	counter(descFailures, s.AuthFailures)
	counter(descRevoked, s.Revocations)
	counter(descVerify, s.VerifyOK, "ok")
	counter(descVerify, s.VerifyExpired, "expired")
	counter(descVerify, s.VerifyRevoked, "revoked")
	counter(descVerify, s.VerifyInvalid, "invalid")
	counter(descVerify, s.VerifyUnavailable, "unavailable")
	counter(descCache, s.VerifyCacheHits, "hit")
	counter(descCache, s.VerifyCacheMisses, "miss")
	counter(descStore, s.StoreErrors)
	ch <- prometheus.MustNewConstMetric(descKeyAge, prometheus.GaugeValue, s.SigningKeyAge.Seconds())
	ch <- prometheus.MustNewConstMetric(descKnown, prometheus.GaugeValue, float64(s.KnownAddresses))
	counter(descKnownW, s.KnownAddressWrites, "ok")
	counter(descKnownW, s.KnownAddressWriteErrors, "failed")
	counter(descKnownW, s.KnownAddressWritesDropped, "dropped")
}
