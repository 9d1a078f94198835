package dev.weir.bench.kstreams;

import dev.weir.bench.kstreams.Model.Auction;
import dev.weir.bench.kstreams.Model.Bid;
import dev.weir.bench.kstreams.Model.Event;
import dev.weir.bench.kstreams.Model.Person;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.EmitStrategy;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.processor.api.ContextualProcessor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.SessionStore;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * The Nexmark queries as Kafka Streams topologies. Each reads the event topic once, decoding
 * each record once (EventSerde) with its dateTime as event time (EventTime), and writes one
 * JSON object per result, with no key and an explicit record timestamp.
 *
 * Event-time windows emit final results only, with EmitStrategy.onWindowClose() and a grace
 * of WATERMARK_DELAY: Flink's watermark trails the largest event time by 4 s, so a window
 * closes there once the event time reaches its end + 4 s; Kafka Streams' stream time is the
 * largest timestamp a task has seen, so grace 4 s closes it at the same point.
 */
final class Queries {
    private Queries() {}

    static final List<String> NAMES = List.of("q0", "q1", "q2", "q3", "q5", "q7", "q8", "q11", "q12");

    static final Duration WATERMARK_DELAY = Duration.ofSeconds(4);

    /**
     * The grace of every event-time window: WATERMARK_DELAY unless -Dnexmark.graceMs says
     * otherwise (see README: Kafka Streams drops records that reach a window more than the
     * grace behind the task's stream time, which the skew between input partitions can
     * exceed when catching up on a backlog).
     */
    static Duration grace() {
        return Duration.ofMillis(Long.getLong("nexmark.graceMs", WATERMARK_DELAY.toMillis()));
    }
    static final long Q5_SIZE = 10_000, Q5_SLIDE = 2_000;
    static final long Q7_WINDOW = 10_000, Q8_WINDOW = 10_000, Q11_GAP = 10_000, Q12_WINDOW = 10_000;


    static final Serde<byte[]> BYTES = Serdes.ByteArray();
    static final Serde<Long> LONG = Serdes.Long();

    // ---- the source -------------------------------------------------------------------

    static final class EventSerde implements Serde<Event> {
        @Override
        public Serializer<Event> serializer() {
            return (t, e) -> { throw new UnsupportedOperationException("events are only read"); };
        }

        @Override
        public Deserializer<Event> deserializer() {
            return (topic, data) -> {
                if (data == null) return null;
                try {
                    return Json.parseEvent(data);
                } catch (IOException ex) {
                    throw new org.apache.kafka.common.errors.SerializationException("decoding a Nexmark event: " + ex.getMessage(), ex);
                }
            };
        }
    }

    /** The event's dateTime, from the already decoded value (no second parse). */
    static final class EventTime implements TimestampExtractor {
        @Override
        public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
            Object v = record.value();
            if (v instanceof Event) {
                long t = ((Event) v).time();
                if (t != Long.MIN_VALUE) return t;
            }
            return record.timestamp();
        }
    }

    static KStream<byte[], Event> source(StreamsBuilder b, String in) {
        return b.stream(in, Consumed.with(BYTES, new EventSerde()).withTimestampExtractor(new EventTime()).withName("nexmark-source"));
    }

    static void build(StreamsBuilder b, String query, String in, String out, int inputPartitions) {
        KStream<byte[], Event> events = source(b, in);
        Produced<byte[], byte[]> sink = Produced.with(BYTES, BYTES).withName("nexmark-sink");
        switch (query) {
            case "q0": events.process(() -> new BidOut(false), named("q0-bids")).to(out, sink); break;
            case "q1": events.process(() -> new BidOut(true), named("q1-euros")).to(out, sink); break;
            case "q2": events.process(Q2::new, named("q2-select")).to(out, sink); break;
            case "q3": q3(b, events).to(out, sink); break;
            case "q5": q5(b, events, inputPartitions).to(out, sink); break;
            case "q7": q7(events).to(out, sink); break;
            case "q8": q8(events).to(out, sink); break;
            case "q11": q11(events).to(out, sink); break;
            case "q12": q12(b, events).to(out, sink); break;
            default: throw new IllegalArgumentException("no query " + query + " (have " + NAMES + ")");
        }
    }

    private static org.apache.kafka.streams.kstream.Named named(String n) {
        return org.apache.kafka.streams.kstream.Named.as(n);
    }

    /** A processor writing JSON results, with a reusable writer. */
    abstract static class Emit<KIn, VIn> extends ContextualProcessor<KIn, VIn, byte[], byte[]> {
        final Json.Out json = new Json.Out();

        void emit(byte[] value, long timestamp) {
            context().forward(new Record<byte[], byte[]>(null, value, timestamp));
        }
    }

    // ---- q0, q1, q2: stateless --------------------------------------------------------

    static final class BidOut extends Emit<byte[], Event> {
        private final boolean euros;

        BidOut(boolean euros) { this.euros = euros; }

        @Override
        public void process(Record<byte[], Event> r) {
            Bid b = r.value().bid;
            if (b == null) return;
            long price = euros ? b.price * 908 / 1000 : b.price;
            emit(json.begin().num("auction", b.auction).num("bidder", b.bidder).num("price", price)
                    .str("channel", b.channel).str("url", b.url).time("dateTime", b.dateTime).str("extra", b.extra).end(),
                    b.dateTime);
        }
    }

    static final class Q2 extends Emit<byte[], Event> {
        @Override
        public void process(Record<byte[], Event> r) {
            Bid b = r.value().bid;
            if (b == null || b.auction % 123 != 0) return;
            emit(json.begin().num("auction", b.auction).num("price", b.price).end(), b.dateTime);
        }
    }

    // ---- q3: regular join -------------------------------------------------------------

    static final Set<String> Q3_STATES = Set.of("OR", "ID", "CA");

    /**
     * Persons in OR, ID or CA and auctions of category 10, keyed by the person's id (the
     * auction's seller) into one processor keeping the person (id -> name, city, state,
     * dateTime) and the auctions that came before their seller (seller -> [auction id,
     * dateTime]...). Person ids are unique, so a waiting auction is joined once and dropped;
     * Flink's regular join keeps both sides for ever, with the same results.
     */
    static KStream<byte[], byte[]> q3(StreamsBuilder b, KStream<byte[], Event> events) {
        b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("q3-persons"), LONG, BYTES).withCachingEnabled());
        b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("q3-waiting"), LONG, BYTES).withCachingEnabled());
        return events.process(Q3Select::new, named("q3-select"))
                .repartition(Repartitioned.with(LONG, BYTES).withName("q3-by-seller"))
                .process(Q3Join::new, named("q3-join"), "q3-persons", "q3-waiting");
    }

    /** Row layouts: person [0][dateTime][name][city][state], auction [1][dateTime][id]. */
    static final class Q3Select extends ContextualProcessor<byte[], Event, Long, byte[]> {
        private final Bin.W w = new Bin.W(64);

        @Override
        public void process(Record<byte[], Event> r) {
            Event e = r.value();
            if (e.person != null && Q3_STATES.contains(e.person.state)) {
                Person p = e.person;
                context().forward(r.withKey(p.id).withValue(w.reset().u8(0).i64(p.dateTime).str(p.name).str(p.city).str(p.state).done()));
            } else if (e.auction != null && e.auction.category == 10) {
                Auction a = e.auction;
                context().forward(r.withKey(a.seller).withValue(w.reset().u8(1).i64(a.dateTime).i64(a.id).done()));
            }
        }
    }

    static final class Q3Join extends Emit<Long, byte[]> {
        private KeyValueStore<Long, byte[]> persons, waiting;

        @Override
        public void init(ProcessorContext<byte[], byte[]> context) {
            super.init(context);
            persons = context.getStateStore("q3-persons");
            waiting = context.getStateStore("q3-waiting");
        }

        @Override
        public void process(Record<Long, byte[]> r) {
            byte[] row = r.value();
            long id = r.key();
            if (row[0] == 0) {
                persons.put(id, row);
                byte[] w = waiting.get(id);
                if (w == null) return;
                for (int p = 0; p < w.length; p += 16) {
                    emit(id, row, Bin.i64(w, p + 8), Bin.i64(w, p));
                }
                waiting.delete(id);
                return;
            }
            long at = Bin.i64(row, 1), auction = Bin.i64(row, 9);
            byte[] person = persons.get(id);
            if (person != null) {
                emit(id, person, auction, at);
                return;
            }
            byte[] w = waiting.get(id);
            byte[] nw = w == null ? new byte[16] : Arrays.copyOf(w, w.length + 16);
            int p = nw.length - 16;
            Bin.put64(nw, p, at);
            Bin.put64(nw, p + 8, auction);
            waiting.put(id, nw);
        }

        private void emit(long seller, byte[] person, long auction, long auctionTime) {
            Bin.R in = new Bin.R(person, 1);
            long personTime = in.i64();
            String name = in.str(), city = in.str(), state = in.str();
            emit(json.begin().str("name", name).str("city", city).str("state", state).num("id", auction).end(),
                    Math.max(personTime, auctionTime));
        }
    }

    // ---- q5: hot items ------------------------------------------------------------------

    /**
     * Two stages, as Flink's plan: bids counted per auction and sliding window (keyed by
     * auction; final counts only), then the counts of every window brought to one task,
     * which keeps each window's highest count and the auctions that have it and emits a
     * window once every counting task has moved past it.
     *
     * Kafka Streams has no watermark to say when a window's counts are all in: stream time
     * at the second stage is the largest count timestamp seen from any counting task, and
     * one counting task may close windows well before the other (it only takes the other
     * being behind in its input, or a later batch of events reaching one task first). So the
     * counts carry the counting task's partition, each counting task emits its closed
     * windows in window order (onWindowClose range-scans its time-ordered store), and a
     * window is complete once every counting task has sent a count of a later window. That
     * needs the number of counting tasks: the partitions of the input topic, as Kafka
     * Streams sizes the repartition topic. It emits a window one slide (2 s of event time)
     * after Flink would.
     *
     * Bids cross the first repartition as an 8-byte key and an empty value; counts the
     * second as [partition i32][window end][auction][count] under the key 0.
     */
    static KStream<byte[], byte[]> q5(StreamsBuilder b, KStream<byte[], Event> events, int countingTasks) {
        b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("q5-top"), LONG, BYTES).withCachingEnabled());
        b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("q5-progress"), Serdes.Integer(), LONG));
        return events.process(BidKey.AUCTION, named("q5-auction"))
                .groupByKey(Grouped.with("q5-by-auction", LONG, BYTES))
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(Q5_SIZE), grace()).advanceBy(Duration.ofMillis(Q5_SLIDE)))
                .emitStrategy(EmitStrategy.onWindowClose())
                .count(named("q5-count"), Materialized.<Long, Long, WindowStore<Bytes, byte[]>>as("q5-counts").withKeySerde(LONG).withValueSerde(LONG))
                .toStream(named("q5-counts-out"))
                .process(Q5Count::new, named("q5-to-top"))
                .repartition(Repartitioned.with(LONG, BYTES).withName("q5-all-windows").withNumberOfPartitions(1))
                .process(() -> new Q5Top(countingTasks), named("q5-top"), "q5-top", "q5-progress");
    }

    /** Bids keyed by auction or bidder, with an empty value; the timestamp stays the bid's. */
    enum BidKey implements org.apache.kafka.streams.processor.api.ProcessorSupplier<byte[], Event, Long, byte[]> {
        AUCTION, BIDDER;

        @Override
        public org.apache.kafka.streams.processor.api.Processor<byte[], Event, Long, byte[]> get() {
            boolean auction = this == AUCTION;
            return new ContextualProcessor<>() {
                @Override
                public void process(Record<byte[], Event> r) {
                    Bid b = r.value().bid;
                    if (b != null) context().forward(r.withKey(auction ? b.auction : b.bidder).withValue(Bin.EMPTY));
                }
            };
        }
    }

    /** A final count, from this counting task, to the one top task; timestamp end - 1. */
    static final class Q5Count extends ContextualProcessor<Windowed<Long>, Long, Long, byte[]> {
        @Override
        public void process(Record<Windowed<Long>, Long> r) {
            if (r.value() == null) return;
            long end = r.key().window().end();
            byte[] v = new byte[28];
            int p = context().taskId().partition();
            v[0] = (byte) (p >>> 24); v[1] = (byte) (p >>> 16); v[2] = (byte) (p >>> 8); v[3] = (byte) p;
            Bin.put64(v, 4, end);
            Bin.put64(v, 12, r.key().key());
            Bin.put64(v, 20, r.value());
            context().forward(new Record<>(0L, v, end - 1));
        }
    }

    /**
     * Per window end: accumulator [max][auction...] in q5-top; per counting task: the latest
     * window end it sent, in q5-progress. Windows ending before every task's latest are done.
     */
    static final class Q5Top extends Emit<Long, byte[]> {
        private final int tasks;
        private final long[] progress;
        private KeyValueStore<Long, byte[]> top;
        private KeyValueStore<Integer, Long> progressStore;
        /** Every window ending at or before this was emitted. */
        private long emitted = Long.MIN_VALUE;

        Q5Top(int tasks) {
            this.tasks = tasks;
            this.progress = new long[tasks];
        }

        @Override
        public void init(ProcessorContext<byte[], byte[]> context) {
            super.init(context);
            top = context.getStateStore("q5-top");
            progressStore = context.getStateStore("q5-progress");
            Arrays.fill(progress, Long.MIN_VALUE);
            for (int i = 0; i < tasks; i++) {
                Long e = progressStore.get(i);
                if (e != null) progress[i] = e;
            }
        }

        @Override
        public void process(Record<Long, byte[]> r) {
            byte[] v = r.value();
            int p = Bin.i32(v, 0);
            long end = Bin.i64(v, 4), auction = Bin.i64(v, 12), n = Bin.i64(v, 20);
            if (p < 0 || p >= tasks) throw new IllegalStateException("q5: count from counting task " + p + ", expected " + tasks + " tasks");
            if (end <= emitted) return; // cannot happen: a task emits its windows in order
            byte[] acc = top.get(end);
            byte[] next = q5Top(auction, n, acc);
            if (next != acc) top.put(end, next);
            if (end > progress[p]) {
                progress[p] = end;
                progressStore.put(p, end);
                long done = Long.MAX_VALUE;
                for (long e : progress) done = Math.min(done, e);
                if (done != Long.MIN_VALUE && done - 1 > emitted) flush(done - 1);
            }
        }

        /** Emits and forgets every window ending at or before upTo. */
        private void flush(long upTo) {
            List<KeyValue<Long, byte[]>> done = new ArrayList<>();
            try (KeyValueIterator<Long, byte[]> it = top.range(Math.max(emitted + 1, 0L), upTo)) {
                while (it.hasNext()) done.add(it.next());
            }
            for (KeyValue<Long, byte[]> kv : done) {
                byte[] acc = kv.value;
                long max = Bin.i64(acc, 0);
                long[] auctions = new long[(acc.length - 8) / 8];
                for (int i = 0; i < auctions.length; i++) auctions[i] = Bin.i64(acc, 8 + 8 * i);
                Arrays.sort(auctions);
                for (long a : auctions) emit(json.begin().num("auction", a).num("num", max).end(), kv.key - 1);
                top.delete(kv.key);
            }
            emitted = upTo;
        }
    }

    /** Adds an auction's count to a window's accumulator [max][auction...] (null: none yet). */
    static byte[] q5Top(long auction, long n, byte[] acc) {
        if (acc == null || n > Bin.i64(acc, 0)) {
            byte[] a = new byte[16];
            Bin.put64(a, 0, n);
            Bin.put64(a, 8, auction);
            return a;
        }
        if (n < Bin.i64(acc, 0)) return acc;
        byte[] a = Arrays.copyOf(acc, acc.length + 8);
        Bin.put64(a, acc.length, auction);
        return a;
    }

    // ---- q7: highest bid ----------------------------------------------------------------

    /**
     * Bids keyed by the start of their tumbling window, so one task sees all of a window (as
     * Flink's global aggregate), and a windowed aggregate keeps the highest price with the
     * bids that have it. A bid counts in its own window only (the SQL's BETWEEN would also
     * count a bid at exactly a window's end in the window before).
     * Row: [auction][bidder][price][dateTime][extra]; accumulator: [max]([len][row])...
     */
    static KStream<byte[], byte[]> q7(KStream<byte[], Event> events) {
        return events.process(Q7Select::new, named("q7-select"))
                .groupByKey(Grouped.with("q7-by-window", LONG, BYTES))
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(Q7_WINDOW), grace()))
                .emitStrategy(EmitStrategy.onWindowClose())
                .aggregate(() -> Bin.EMPTY, Queries::q7Add, named("q7-aggregate"),
                        Materialized.<Long, byte[], WindowStore<Bytes, byte[]>>as("q7-highest").withKeySerde(LONG).withValueSerde(BYTES))
                .toStream(named("q7-highest-out"))
                .process(Q7Out::new, named("q7-out"));
    }

    static final class Q7Select extends ContextualProcessor<byte[], Event, Long, byte[]> {
        private final Bin.W w = new Bin.W(128);

        @Override
        public void process(Record<byte[], Event> r) {
            Bid b = r.value().bid;
            if (b == null) return;
            long start = b.dateTime - Math.floorMod(b.dateTime, Q7_WINDOW);
            context().forward(r.withKey(start).withValue(
                    w.reset().i64(b.auction).i64(b.bidder).i64(b.price).i64(b.dateTime).str(b.extra).done()));
        }
    }

    static byte[] q7Add(Long start, byte[] row, byte[] acc) {
        long price = Bin.i64(row, 16);
        if (acc.length == 0 || price > Bin.i64(acc, 0)) {
            byte[] a = new byte[12 + row.length];
            Bin.put64(a, 0, price);
            a[8] = (byte) (row.length >>> 24); a[9] = (byte) (row.length >>> 16); a[10] = (byte) (row.length >>> 8); a[11] = (byte) row.length;
            System.arraycopy(row, 0, a, 12, row.length);
            return a;
        }
        if (price < Bin.i64(acc, 0)) return acc;
        byte[] a = Arrays.copyOf(acc, acc.length + 4 + row.length);
        int p = acc.length;
        a[p] = (byte) (row.length >>> 24); a[p + 1] = (byte) (row.length >>> 16); a[p + 2] = (byte) (row.length >>> 8); a[p + 3] = (byte) row.length;
        System.arraycopy(row, 0, a, p + 4, row.length);
        return a;
    }

    static final class Q7Out extends Emit<Windowed<Long>, byte[]> {
        @Override
        public void process(Record<Windowed<Long>, byte[]> r) {
            byte[] acc = r.value();
            if (acc == null || acc.length == 0) return;
            long ts = r.key().window().end() - 1;
            Bin.R in = new Bin.R(acc, 8);
            while (in.more()) {
                in.i32();
                long auction = in.i64(), bidder = in.i64(), price = in.i64(), at = in.i64();
                String extra = in.str();
                emit(json.begin().num("auction", auction).num("bidder", bidder).num("price", price)
                        .time("dateTime", at).str("extra", extra).end(), ts);
            }
        }
    }

    // ---- q8: monitor new users ----------------------------------------------------------

    /**
     * Persons keyed by id and auctions keyed by seller, into one tumbling-window aggregate
     * per (person, window) noting the person's name and whether they sold anything in that
     * window: Flink's window join of persons with distinct sellers, as one aggregate. Rows:
     * person [0][name], auction [1]; accumulator [flags: 1 person, 2 auction][name].
     */
    static KStream<byte[], byte[]> q8(KStream<byte[], Event> events) {
        return events.process(Q8Select::new, named("q8-select"))
                .groupByKey(Grouped.with("q8-by-person", LONG, BYTES))
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(Q8_WINDOW), grace()))
                .emitStrategy(EmitStrategy.onWindowClose())
                .aggregate(() -> Bin.EMPTY, Queries::q8Add, named("q8-aggregate"),
                        Materialized.<Long, byte[], WindowStore<Bytes, byte[]>>as("q8-window").withKeySerde(LONG).withValueSerde(BYTES))
                .toStream(named("q8-window-out"))
                .process(Q8Out::new, named("q8-out"));
    }

    static final byte[] Q8_AUCTION = {1};

    static final class Q8Select extends ContextualProcessor<byte[], Event, Long, byte[]> {
        private final Bin.W w = new Bin.W(32);

        @Override
        public void process(Record<byte[], Event> r) {
            Event e = r.value();
            if (e.person != null) {
                context().forward(r.withKey(e.person.id).withValue(w.reset().u8(0).str(e.person.name).done()));
            } else if (e.auction != null) {
                context().forward(r.withKey(e.auction.seller).withValue(Q8_AUCTION));
            }
        }
    }

    static byte[] q8Add(Long id, byte[] row, byte[] acc) {
        int flags = acc.length == 0 ? 0 : acc[0];
        if (row[0] == 1) {
            if ((flags & 2) != 0) return acc;
            byte[] a = acc.length == 0 ? new byte[1] : acc.clone();
            a[0] = (byte) (flags | 2);
            return a;
        }
        byte[] a = row.clone();
        a[0] = (byte) (flags | 1);
        return a;
    }

    static final class Q8Out extends Emit<Windowed<Long>, byte[]> {
        @Override
        public void process(Record<Windowed<Long>, byte[]> r) {
            byte[] acc = r.value();
            if (acc == null || acc.length == 0 || acc[0] != 3) return;
            String name = new Bin.R(acc, 1).str();
            emit(json.begin().num("id", r.key().key()).str("name", name).time("stime", r.key().window().start()).end(),
                    r.key().window().end() - 1);
        }
    }

    // ---- q11: user sessions -------------------------------------------------------------

    /**
     * Session windows per bidder. Kafka Streams merges a record into a session whose last
     * record is at most the gap before it (inclusive, as Flink's touching windows merge),
     * and its onWindowClose emission closes a session once stream time passes its last
     * record + gap + grace, so grace is the watermark delay as for the other windows. A
     * Kafka Streams session ends at its last record; Flink's SESSION_END adds the gap.
     */
    static KStream<byte[], byte[]> q11(KStream<byte[], Event> events) {
        return events.process(BidKey.BIDDER, named("q11-bidder"))
                .groupByKey(Grouped.with("q11-by-bidder", LONG, BYTES))
                .windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(Q11_GAP), grace()))
                .emitStrategy(EmitStrategy.onWindowClose())
                .count(named("q11-count"), Materialized.<Long, Long, SessionStore<Bytes, byte[]>>as("q11-sessions").withKeySerde(LONG).withValueSerde(LONG))
                .toStream(named("q11-sessions-out"))
                .process(Q11Out::new, named("q11-out"));
    }

    static final class Q11Out extends Emit<Windowed<Long>, Long> {
        @Override
        public void process(Record<Windowed<Long>, Long> r) {
            if (r.value() == null) return;
            long start = r.key().window().start(), end = r.key().window().end() + Q11_GAP;
            emit(json.begin().num("bidder", r.key().key()).num("bid_count", r.value())
                    .time("starttime", start).time("endtime", end).end(), end - 1);
        }
    }

    // ---- q12: processing-time windows ---------------------------------------------------

    /**
     * Bids keyed by bidder; a processor counts each bid in the tumbling window of the wall
     * clock it arrives at, in a key-value store keyed [window start][bidder] (big-endian,
     * so a window's counts are one range), and a wall-clock punctuator emits and forgets the
     * windows the clock has passed.
     */
    static KStream<byte[], byte[]> q12(StreamsBuilder b, KStream<byte[], Event> events) {
        b.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore("q12-counts"), Serdes.Bytes(), LONG).withCachingEnabled());
        return events.process(BidKey.BIDDER, named("q12-bidder"))
                .repartition(Repartitioned.with(LONG, BYTES).withName("q12-by-bidder"))
                .process(Q12Count::new, named("q12-counts"), "q12-counts");
    }

    static final class Q12Count extends Emit<Long, byte[]> {
        private KeyValueStore<Bytes, Long> counts;
        /** Start of the oldest window that may have counts; Long.MAX_VALUE if none. */
        private long oldest = Long.MIN_VALUE;

        @Override
        public void init(ProcessorContext<byte[], byte[]> context) {
            super.init(context);
            counts = context.getStateStore("q12-counts");
            context.schedule(Duration.ofMillis(100), PunctuationType.WALL_CLOCK_TIME, this::fire);
        }

        private static Bytes key(long start, long bidder) {
            byte[] k = new byte[16];
            Bin.put64(k, 0, start);
            Bin.put64(k, 8, bidder);
            return Bytes.wrap(k);
        }

        @Override
        public void process(Record<Long, byte[]> r) {
            long now = context().currentSystemTimeMs();
            long start = now - Math.floorMod(now, Q12_WINDOW);
            Bytes k = key(start, r.key());
            Long n = counts.get(k);
            counts.put(k, n == null ? 1L : n + 1);
            if (start < oldest) oldest = start;
        }

        private void fire(long now) {
            long current = now - Math.floorMod(now, Q12_WINDOW);
            if (oldest >= current) return;
            List<KeyValue<Bytes, Long>> done = new ArrayList<>();
            // Every key of a window that ended: start < current. Keys are big-endian, so
            // windows before the epoch (negative starts) are never made.
            try (KeyValueIterator<Bytes, Long> it = counts.range(key(0, 0), key(current - 1, -1))) {
                while (it.hasNext()) done.add(it.next());
            }
            for (KeyValue<Bytes, Long> kv : done) {
                byte[] k = kv.key.get();
                long start = Bin.i64(k, 0), bidder = Bin.i64(k, 8), end = start + Q12_WINDOW;
                emit(json.begin().num("bidder", bidder).num("bid_count", kv.value)
                        .time("starttime", start).time("endtime", end).end(), end - 1);
                counts.delete(kv.key);
            }
            oldest = Long.MAX_VALUE;
        }
    }
}
