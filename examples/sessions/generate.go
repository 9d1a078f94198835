package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
)

// GeneratorStart is when the generated views begin (event time): a fixed
// day, so one seed always gives the same input and the same sessions.
var GeneratorStart = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

var pages = []string{
	"/", "/", "/", "/search", "/pricing", "/about", "/cart", "/checkout",
	"/blog/weir-1-0", "/blog/exactly-once", "/blog/session-windows",
	"/products/1", "/products/2", "/products/3", "/products/4", "/products/5", "/products/6",
	"/products/7", "/products/8", "/products/9", "/products/10", "/products/11", "/products/12",
}

// generateViews returns about n input records (keyed by user, as the
// collector writes them) in the order a producer sends them: n page views
// of n/40 users, in sessions of 1-20 views a few seconds to 25 minutes
// apart, sessions 31 minutes to 5 hours apart. Each user's first session
// ends, in turn, with one of:
//
//   - the next view exactly Gap later: one session, not two;
//   - the next view Gap plus 1ms later: two sessions;
//   - a view Gap+40s later, then, sent after it (40s out of order), one
//     Gap after the session's last view: it bridges the two sessions, which
//     merge into one;
//   - nothing: the first session is a single view (a bounce);
//   - and a view two hours before the user's first, sent last: later than
//     its session could be, so it goes to the late-data topic.
//
// Once per 500 views there is also a view without a page and a record that
// is not JSON (both dead-lettered). Views are otherwise sent up to
// OutOfOrderness out of event-time order, never more.
func generateViews(n int, seed uint64) ([]*kgo.Record, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5E5510))
	users := max(5, n/40)
	ms := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64((hi-lo)/time.Millisecond)+1))*time.Millisecond
	}
	jitter := func() time.Duration { return ms(0, OutOfOrderness-time.Millisecond) }
	page := func() string { return pages[rng.IntN(len(pages))] }

	type sending struct {
		view PageView
		when time.Time // when it is sent, in event time
	}
	var out []sending
	var late []sending // sent after everything else
	for u := range users {
		user := fmt.Sprintf("user-%04d", u+1)
		quota := n / users
		if u < n%users {
			quota++
		}
		at := GeneratorStart.Add(ms(0, 3*time.Hour))
		first := at
		count := 0
		send := func(at time.Time, delay time.Duration) {
			out = append(out, sending{PageView{User: user, Page: page(), At: at}, at.Add(delay)})
			count++
		}
		nextDelay := jitter()
		for s := 0; count < quota; s++ {
			length := 1 + rng.IntN(20)
			if s == 0 && u%5 == 3 {
				length = 1 // a bounce
			}
			for i := 0; i < length && count < quota; i++ {
				if i > 0 {
					if rng.IntN(5) == 0 {
						at = at.Add(ms(3*time.Minute, 25*time.Minute))
					} else {
						at = at.Add(ms(5*time.Second, 3*time.Minute))
					}
				}
				send(at, nextDelay)
				nextDelay = jitter()
			}
			gap := ms(Gap+time.Minute, 5*time.Hour)
			if s == 0 {
				switch u % 5 {
				case 0:
					gap = Gap // touching: one session
				case 1:
					gap = Gap + time.Millisecond // the first millisecond that splits
				case 2:
					// Bridge: the next session starts Gap+40s later and is sent
					// at once; a view Gap after this one follows 55s late.
					send(at.Add(Gap), 55*time.Second)
					gap, nextDelay = Gap+40*time.Second, 0
				case 4:
					late = append(late, sending{PageView{User: user, Page: page(), At: first.Add(-2 * time.Hour)}, time.Time{}})
				}
			}
			at = at.Add(gap)
		}
	}
	slices.SortStableFunc(out, func(a, b sending) int { return a.when.Compare(b.when) })
	out = append(out, late...)

	c := codec.JSON[PageView]()
	recs := make([]*kgo.Record, 0, len(out)+2*(n/500))
	for _, s := range out {
		v, err := c.Encode(s.view)
		if err != nil {
			return nil, err
		}
		recs = append(recs, &kgo.Record{Key: []byte(s.view.User), Value: v, Timestamp: s.view.At})
	}
	for i := range n / 500 {
		pos := (2*i + 1) * len(recs) / (2*(n/500) + 1)
		at := recs[pos].Timestamp
		noPage, err := c.Encode(PageView{User: "user-0001", At: at})
		if err != nil {
			return nil, err
		}
		recs = slices.Insert(recs, pos,
			&kgo.Record{Key: []byte("user-0001"), Value: noPage, Timestamp: at},
			&kgo.Record{Key: []byte("user-0002"), Value: []byte(`<img src="/pixel.gif?u=user-0002">`), Timestamp: at})
	}
	return recs, nil
}

// writeViews creates the topics if they are missing and writes about n
// generated page views to input.
func writeViews(brokers []string, input, output string, partitions, n int, seed uint64) error {
	if n <= 0 {
		return fmt.Errorf("--generate %d: want a positive number of page views", n)
	}
	recs, err := generateViews(n, seed)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := createTopics(ctx, cl, partitions, input, output); err != nil {
		return err
	}
	for _, r := range recs {
		r.Topic = input
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("writing to %s: %w", input, err)
	}
	fmt.Printf("wrote %d records (about %d page views, seed %d) to %s\n", len(recs), n, seed, input)
	return nil
}

// createTopics creates the topics that do not exist yet. They keep their
// records forever (retention.ms=-1): the generated views are stamped with
// a fixed day, which time-based retention would soon delete.
func createTopics(ctx context.Context, cl *kgo.Client, partitions int, topics ...string) error {
	if partitions <= 0 {
		return fmt.Errorf("--partitions %d: want a positive number", partitions)
	}
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, int32(partitions), -1, map[string]*string{"retention.ms": kadm.StringPtr("-1")}, topics...)
	if err != nil {
		return fmt.Errorf("creating topics %v: %w", topics, err)
	}
	for _, r := range resp.Sorted() {
		switch {
		case r.Err == nil:
			fmt.Printf("created topic %s (%d partitions)\n", r.Topic, partitions)
		case errors.Is(r.Err, kerr.TopicAlreadyExists):
		default:
			return fmt.Errorf("creating topic %s: %w (%s)", r.Topic, r.Err, r.ErrMessage)
		}
	}
	return nil
}
