// Package testsupport holds nothing itself: its subpackages are the test
// helpers for the real peers and fakes parkpage's tests use, each written
// once (as sipgo's siptest and coredns's dnstest are): proctest (free
// ports, processes read line by line, output tails), mcasttest (multicast
// receivers joined on lo), sipptest (sipp scenarios), clocktest (a manual
// clock.Clock and a timeline), logtest (a slog handler that counts
// records, a locked log buffer), runtest (a part's Run(ctx) loop owned by
// the test, polling waits), audiotest (how much of the sent audio a
// receiver heard) and ffmpegtest (ffmpeg, the codecs' reference peer).
// Only tests import them; they import nothing of parkpage's but
// internal/clock.
package testsupport
