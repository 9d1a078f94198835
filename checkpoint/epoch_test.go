package checkpoint

import (
	"errors"
	"sync"
	"testing"
)

func TestEpochCompletesOnlyWhenSealedAndAcked(t *testing.T) {
	e := NewEpoch(nil)
	e.Add()
	e.Add()
	e.Ack(nil)
	select {
	case <-e.Done():
		t.Fatal("done before seal")
	default:
	}
	e.Seal()
	select {
	case <-e.Done():
		t.Fatal("done with one record unacknowledged")
	default:
	}
	e.Ack(nil)
	<-e.Done()
	if err := e.Wait(nil); err != nil {
		t.Fatal(err)
	}
}

func TestEpochWaitCoversPredecessorsAndKeepsFirstError(t *testing.T) {
	first := NewEpoch(nil)
	first.Add()
	first.Seal()
	second := NewEpoch(first)
	second.Seal()
	stop := make(chan struct{})
	close(stop)
	if err := second.Wait(stop); !errors.Is(err, ErrAborted) {
		t.Fatalf("want ErrAborted while the predecessor is pending, got %v", err)
	}
	boom := errors.New("record too large")
	first.Ack(boom)
	if err := second.Wait(nil); !errors.Is(err, boom) {
		t.Fatalf("want predecessor's error, got %v", err)
	}
}

func TestEpochConcurrentAcks(t *testing.T) {
	e := NewEpoch(nil)
	const n = 1000
	var wg sync.WaitGroup
	for range n {
		e.Add()
		wg.Go(func() { e.Ack(nil) })
	}
	e.Seal()
	wg.Wait()
	if err := e.Wait(nil); err != nil {
		t.Fatal(err)
	}
}
