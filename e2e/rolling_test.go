package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/weirstream/weir/internal/kafkatest"
)

// owners polls the group's members and records, per partition of topic,
// the replica (static instance id) owning it each time it changes.
type owners struct {
	mu      sync.Mutex
	history map[int32][]string
}

func watchOwners(t *testing.T, brokers []string, group, topic string) (*owners, func()) {
	o := &owners{history: map[int32][]string{}}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			gs, err := adm.DescribeGroups(rctx, group)
			rcancel()
			if g, ok := gs[group]; err == nil && ok && g.State == "Stable" {
				o.mu.Lock()
				for _, m := range g.Members {
					ca, ok := m.Assigned.AsConsumer()
					if !ok || m.InstanceID == nil {
						continue
					}
					for _, at := range ca.Topics {
						if at.Topic != topic {
							continue
						}
						for _, p := range at.Partitions {
							h := o.history[p]
							if len(h) == 0 || h[len(h)-1] != *m.InstanceID {
								o.history[p] = append(h, *m.InstanceID)
							}
						}
					}
				}
				o.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return o, func() { cancel(); <-done }
}

// ownedBy returns the partitions whose last owner is replica.
func (o *owners) ownedBy(replica string) []int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ps []int32
	for p, h := range o.history {
		if len(h) > 0 && h[len(h)-1] == replica {
			ps = append(ps, p)
		}
	}
	return ps
}

// moves returns, per partition, how many times its owner changed.
func (o *owners) moves() map[int32]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := map[int32]int{}
	for p, h := range o.history {
		m[p] = len(h) - 1
	}
	return m
}

func (o *owners) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for _, p := range slices.Sorted(maps.Keys(o.history)) {
		fmt.Fprintf(&b, "%d:%v ", p, o.history[p])
	}
	return b.String()
}

// TestRollingRestartMovesNoTask is `kubectl rollout restart` of a
// StatefulSet: two replicas with stable ids (the pod names, as
// WEIR_REPLICA_ID) that do not leave the group when stopped
// (WEIR_LEAVE_GROUP_ON_SHUTDOWN=false), each stopped with SIGTERM and
// started again in turn while input arrives. As static members they keep
// their place in the group across the restart, so no task may change
// replica, and the output is exactly once. WEIR_ROLLING_LEAVE=true runs
// the same with the default (leave the group, as a Deployment's pods do)
// to show the moves that costs; it asserts nothing about them.
func TestRollingRestartMovesNoTask(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "rolling-in", partitions)
	out := kafkatest.CreateTopic(t, brokers, "rolling-out", partitions)
	group := kafkatest.Name("rolling")
	const users, perUser = 100, 200
	want := wantIDs(users, perUser, nil)
	input := events(in, users, perUser, nil)
	leave := os.Getenv("WEIR_ROLLING_LEAVE") == "true"

	common := []string{"JOB_INPUT=" + in, "JOB_OUTPUT=" + out, "WEIR_BROKERS=" + strings.Join(brokers, ","),
		"WEIR_GROUP=" + group, "WEIR_METRICS_ADDR=", "WEIR_CHECKPOINT_INTERVAL=100ms",
		"WEIR_LEAVE_GROUP_ON_SHUTDOWN=" + strconv.FormatBool(leave)}
	rs := []*replica{
		{name: "weir-0", job: "stateless", env: append(slices.Clone(common), "WEIR_REPLICA_ID=weir-0", "WEIR_STATE_DIR="+t.TempDir())},
		{name: "weir-1", job: "stateless", env: append(slices.Clone(common), "WEIR_REPLICA_ID=weir-1", "WEIR_STATE_DIR="+t.TempDir())},
	}
	for _, r := range rs {
		r.start(t)
	}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	stable := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, group)
		return err == nil && gs[group].State == "Stable" && len(gs[group].Members) == len(rs)
	}
	kafkatest.Eventually(t, time.Minute, "both replicas in the group", stable)

	outputs := collect(t, brokers, out)
	producer := kafkatest.Client(t, brokers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan struct{})
	go func() { // about 16 s of input: longer than the rollout
		defer close(produced)
		for i := 0; i < len(input) && ctx.Err() == nil; i += 250 {
			if err := producer.ProduceSync(ctx, input[i:min(i+250, len(input))]...).FirstErr(); err != nil && ctx.Err() == nil {
				t.Errorf("producing input: %v", err)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	kafkatest.Eventually(t, time.Minute, "the first outputs", func() bool { return outputs.len() > 0 })

	o, stopWatching := watchOwners(t, brokers, group, in)
	kafkatest.Eventually(t, time.Minute, "every partition's owner known", func() bool { return len(o.moves()) == partitions })
	var pauses []time.Duration
	// inOwned counts the outputs in the partitions r owned (outputs keep
	// their input's partition: both are murmur2 of the key).
	inOwned := func(owned []int32) int {
		n := 0
		for _, rec := range outputs.snapshot() {
			if slices.Contains(owned, rec.Partition) {
				n++
			}
		}
		return n
	}
	for _, r := range rs {
		owned := o.ownedBy(r.name)
		stopping := time.Now()
		r.stop(t, nil)
		before := inOwned(owned)
		r.start(t)
		kafkatest.Eventually(t, time.Minute, r.name+"'s partitions moving again", func() bool { return inOwned(owned) > before })
		pauses = append(pauses, time.Since(stopping).Round(time.Millisecond))
		kafkatest.Eventually(t, time.Minute, "the group stable again", stable)
	}
	<-produced
	kafkatest.Eventually(t, 2*time.Minute, "every record", func() bool { return distinct(t, outputs.snapshot()) == len(want) })
	stopWatching()
	for _, r := range rs {
		r.stop(t, nil)
	}
	t.Logf("leave group on shutdown %v: owners per partition over the rollout: %s; moves %v; from SIGTERM to the replica's partitions moving again: %v",
		leave, o, o.moves(), pauses)
	if !leave {
		for p, n := range o.moves() {
			if n > 0 {
				t.Errorf("partition %d changed replica %d times during the rolling restart", p, n)
			}
		}
	}
	checkOutputs(t, outputs.snapshot(), want, partitions, true)
}
