package events

import (
	"sync"
	"testing"
	"time"
)

func TestFanOut(t *testing.T) {
	b := New()
	s1, s2 := b.Subscribe(4), b.Subscribe(4)
	b.Publish(Event{Type: CallParked, Slot: "704"})
	for _, s := range []*Subscription{s1, s2} {
		e := <-s.C()
		if e.Type != CallParked || e.Slot != "704" || e.Seq != 1 || e.Time.IsZero() {
			t.Errorf("got %+v", e)
		}
	}
	s1.Close()
	s1.Close() // idempotent
	b.Publish(Event{Type: CallRetrieved})
	if e := <-s2.C(); e.Type != CallRetrieved || e.Seq != 2 {
		t.Errorf("got %+v", e)
	}
	if _, ok := <-s1.C(); ok {
		t.Error("closed subscription still delivers")
	}
}

// A subscriber that never reads must not slow the publisher, and when it
// reads again it learns how much it lost before newer events.
func TestSlowSubscriber(t *testing.T) {
	b := New()
	slow := b.Subscribe(2)
	fast := b.Subscribe(1000)
	var wg sync.WaitGroup
	wg.Add(1)
	got := 0
	go func() {
		defer wg.Done()
		for range fast.C() {
			got++
			if got == 500 {
				return
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		for i := 0; i < 500; i++ {
			b.Publish(Event{Type: PageStarted})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("publisher blocked by a slow subscriber")
	}
	wg.Wait()
	if got != 500 {
		t.Errorf("fast subscriber got %d", got)
	}
	if slow.Dropped() != 498 {
		t.Errorf("dropped = %d, want 498", slow.Dropped())
	}
	e1, e2 := <-slow.C(), <-slow.C()
	if e1.Seq != 1 || e2.Seq != 2 {
		t.Errorf("first events %d %d", e1.Seq, e2.Seq)
	}
	b.Publish(Event{Type: PageEnded})
	lost := <-slow.C()
	if lost.Type != Lost || lost.Count != 498 {
		t.Errorf("lost notice = %+v", lost)
	}
	b.Publish(Event{Type: PageEnded})
	if e := <-slow.C(); e.Type != PageEnded {
		t.Errorf("after lost: %+v", e)
	}
}
