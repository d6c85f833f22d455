package piitest

import "testing"

func TestNoneOf(t *testing.T) {
	var c Capture
	c.Logger().Info("request created", "request_id", "req_1")
	c.NoneOf(t, "person-0001@example.com")

	ft := &testing.T{}
	c.Logger().Info("oops", "email", "Person-0001@Example.com")
	c.NoneOf(ft, "person-0001@example.com")
	if !ft.Failed() {
		t.Fatal("an email in the logs went unnoticed")
	}
}
