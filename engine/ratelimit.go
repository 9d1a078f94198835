package engine

import (
	"time"

	"golang.org/x/time/rate"

	"github.com/weirstream/weir/observe"
)

// rateCaps caps how many records per second a replica reads: over all its
// inputs (Config.MaxRecordsPerSecond) and per source topic
// (Job.LimitSourceRate), as Spark's maxOffsetsPerTrigger caps a catch-up.
// It never sleeps in a task: the poll loop hands each poll's records on,
// charges them to token buckets, and pauses fetching of what went into
// debt until the debt is paid, so the backlog waits in Kafka.
//
// Only the poll loop touches it.
type rateCaps struct {
	obs observe.Observer
	// all is the replica's cap (nil for none), by topic the sources'.
	all   *rate.Limiter
	topic map[string]*rate.Limiter
	// until is, per paused key ("*" for every source topic), when its
	// fetching resumes.
	until map[string]time.Time
	// since is when each paused key was paused, for the metric.
	since map[string]time.Time
	// sources is every source topic, which "*" pauses.
	sources []string
	// pause and resume stop and restart fetching of topics.
	pause, resume func(topics ...string)
}

// allTopics is the key of the replica-wide cap.
const allTopics = "*"

// newRateCaps returns the caps, or nil when there are none.
func newRateCaps(obs observe.Observer, all float64, perTopic map[string]float64, sources []string, pause, resume func(...string)) *rateCaps {
	if all <= 0 && len(perTopic) == 0 {
		return nil
	}
	c := &rateCaps{obs: obs, topic: map[string]*rate.Limiter{}, until: map[string]time.Time{}, since: map[string]time.Time{},
		sources: sources, pause: pause, resume: resume}
	if all > 0 {
		c.all = newCapLimiter(all)
		obs.RateLimit(allTopics, all)
	}
	for topic, r := range perTopic {
		c.topic[topic] = newCapLimiter(r)
		obs.RateLimit(topic, r)
	}
	return c
}

// newCapLimiter is a bucket holding a tenth of a second of records, so a
// paused input resumes in steps of about that.
func newCapLimiter(perSecond float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond/10)))
}

// maxPoll is the most records one poll should take: about one bucket, so
// the rate holds over short spans too.
func (c *rateCaps) maxPoll(def int) int {
	if c == nil {
		return def
	}
	n := def
	if c.all != nil {
		n = min(n, c.all.Burst())
	}
	for _, lim := range c.topic {
		n = min(n, lim.Burst())
	}
	return max(1, n)
}

// charge takes n records read from topic at now from the buckets and
// returns the keys to pause and until when: each bucket in debt.
func (c *rateCaps) charge(counts map[string]int, now time.Time) map[string]time.Time {
	pause := map[string]time.Time{}
	total := 0
	for topic, n := range counts {
		total += n
		if lim, ok := c.topic[topic]; ok {
			if d := reserve(lim, n, now); d > 0 {
				pause[topic] = now.Add(d)
			}
		}
	}
	if c.all != nil && total > 0 {
		if d := reserve(c.all, total, now); d > 0 {
			pause[allTopics] = now.Add(d)
		}
	}
	return pause
}

// reserve takes n tokens from lim, in bucket-sized steps (a reservation
// may not exceed the burst), and returns how long until the debt is paid.
func reserve(lim *rate.Limiter, n int, now time.Time) time.Duration {
	var d time.Duration
	for n > 0 {
		k := min(n, lim.Burst())
		d = lim.ReserveN(now, k).DelayFrom(now)
		n -= k
	}
	return d
}

// take charges the records read from each topic at now and pauses
// fetching of what went into debt.
func (c *rateCaps) take(counts map[string]int, now time.Time) {
	for key, until := range c.charge(counts, now) {
		if _, paused := c.until[key]; !paused {
			c.since[key] = now
			c.pause(c.topicsOf(key)...)
		}
		if until.After(c.until[key]) {
			c.until[key] = until
		}
	}
}

// resumeDue resumes fetching of what paid its debt by now, unless the
// other cap holding a topic still does.
func (c *rateCaps) resumeDue(now time.Time) {
	for key, until := range c.until {
		if until.After(now) {
			continue
		}
		delete(c.until, key)
		c.obs.RateLimited(key, now.Sub(c.since[key]))
		delete(c.since, key)
		var resume []string
		for _, t := range c.topicsOf(key) {
			_, all := c.until[allTopics]
			_, own := c.until[t]
			if !all && !own {
				resume = append(resume, t)
			}
		}
		c.resume(resume...)
	}
}

// topicsOf returns the topics a key pauses.
func (c *rateCaps) topicsOf(key string) []string {
	if key == allTopics {
		return c.sources
	}
	return []string{key}
}

// next returns when the earliest pause ends (zero for none).
func (c *rateCaps) next() time.Time {
	var t time.Time
	for _, u := range c.until {
		if t.IsZero() || u.Before(t) {
			t = u
		}
	}
	return t
}
