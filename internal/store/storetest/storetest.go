// Package storetest is the conformance suite of store.Store: every back end
// runs the same tests, so that SQLite and PostgreSQL behave the same.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// test is one conformance test; it gets an empty store.
type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// Run runs the conformance suite. open must return a new, empty store for
// each subtest; Run closes it when the subtest ends (cleanups registered by
// open run after that).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	var all []test
	all = append(all, hostTests...)
	all = append(all, presenceTests...)
	all = append(all, tokenTests...)
	all = append(all, tokenLimitTests...)
	all = append(all, idempotencyTests...)
	all = append(all, appTests...)
	all = append(all, deploymentTests...)
	all = append(all, jobTests...)
	all = append(all, scheduleTests...)
	all = append(all, leaseTests...)
	all = append(all, settingTests...)
	all = append(all, envTests...)
	all = append(all, lifecycleTests...)
	all = append(all, trafficTests...)
	all = append(all, test{"ConcurrentWriters", testConcurrentWriters})
	for _, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// t0 is the base time of the tests: not UTC and with nanoseconds, so that a
// store that drops either fails.
var t0 = time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("UTC+2", 2*3600))

// at returns t0+d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// utc is what a store returns for t: the same instant, in UTC.
func utc(t time.Time) time.Time { return t.UTC() }

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// ok fails the test now if err is not nil.
func ok(t *testing.T, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", fmt.Sprintf(what, args...), err)
	}
}

// isErr fails the test now unless errors.Is(err, want). It also checks that
// the error carries context beyond the bare sentinel.
func isErr(t *testing.T, err, want error, what string, args ...any) {
	t.Helper()
	label := fmt.Sprintf(what, args...)
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", label, err, want)
	}
	if err.Error() == want.Error() {
		t.Fatalf("%s: error %q is not wrapped with context", label, err)
	}
}

// same fails the test now unless got and want are deeply equal.
func same(t *testing.T, got, want any, what string, args ...any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", fmt.Sprintf(what, args...), got, want)
	}
}

// run starts n goroutines that wait for one start signal and then call fn
// with their index; it returns fn's results once all are done.
func run[T any](n int, fn func(i int) T) []T {
	out := make([]T, n)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			out[i] = fn(i)
		}()
	}
	close(start)
	for range n {
		<-done
	}
	return out
}

// countErrs counts the nil errors and those matching target, and fails the
// test on any other error.
func countErrs(t *testing.T, errs []error, target error) (nils, matching int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			nils++
		case errors.Is(err, target):
			matching++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	return nils, matching
}

// names returns the Name of every host, in order.
func names(hs []store.HostRecord) string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name+"("+h.ID+")")
	}
	return strings.Join(out, " ")
}

// execIDs returns the ID and host name of every execution, in order.
func execIDs(es []api.Execution) string {
	var out []string
	for _, e := range es {
		out = append(out, e.HostName+"="+e.ID)
	}
	return strings.Join(out, " ")
}
