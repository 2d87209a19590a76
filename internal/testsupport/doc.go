// Package testsupport holds nothing itself: its subpackages are the test
// helpers for the real peers parkpage's tests talk to, each written once
// (as sipgo's siptest and coredns's dnstest are): proctest (free ports,
// output tails), mcasttest (multicast receivers joined on lo) and sipptest
// (sipp scenarios). Only tests import them; they import nothing of
// parkpage's.
package testsupport
