package dev.weir.bench.kstreams;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import sun.misc.Signal;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Runs one Nexmark query on Kafka Streams until SIGTERM or SIGINT (exit 0 after closing), or
 * until the application fails (exit 1, the error on stderr). Bad arguments exit 2.
 */
public final class Main {
    private Main() {}

    static final String USAGE = String.join("\n",
            "usage: run.sh --brokers HOST:PORT[,...] --query QUERY --input TOPIC --output TOPIC --group GROUP",
            "              --guarantee exactly-once|at-least-once --interval-ms MS --parallelism N --state-dir DIR",
            "              [--producer-batch-bytes N] [--producer-linger-ms MS] [--producer-compression none|gzip|snappy|lz4|zstd]",
            "queries: " + String.join(", ", Queries.NAMES),
            "options: --describe  print the topology and exit");

    static final class UsageException extends Exception {
        UsageException(String m) { super(m); }
    }

    static Map<String, String> parse(String[] args) throws UsageException {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) throw new UsageException("unexpected argument " + a);
            String k = a.substring(2), v;
            int eq = k.indexOf('=');
            if (eq >= 0) {
                v = k.substring(eq + 1);
                k = k.substring(0, eq);
            } else if (k.equals("describe") || k.equals("help")) {
                v = "true";
            } else {
                if (i + 1 >= args.length) throw new UsageException("--" + k + " needs a value");
                v = args[++i];
            }
            switch (k) {
                case "brokers": case "query": case "input": case "output": case "group": case "guarantee":
                case "interval-ms": case "parallelism": case "state-dir": case "describe": case "help":
                case "producer-batch-bytes": case "producer-linger-ms": case "producer-compression":
                    break;
                default:
                    throw new UsageException("unknown flag --" + k);
            }
            if (m.put(k, v) != null) throw new UsageException("--" + k + " given twice");
        }
        if (m.containsKey("help")) throw new UsageException("");
        boolean describe = m.containsKey("describe");
        for (String k : describe ? new String[] {"query"}
                : new String[] {"brokers", "query", "input", "output", "group", "state-dir"}) {
            if (m.get(k) == null || m.get(k).isEmpty()) throw new UsageException("missing --" + k);
        }
        m.putIfAbsent("guarantee", "exactly-once");
        m.putIfAbsent("interval-ms", "1000");
        m.putIfAbsent("parallelism", "1");
        if (!Queries.NAMES.contains(m.get("query"))) {
            throw new UsageException("unknown query " + m.get("query") + " (have " + String.join(", ", Queries.NAMES) + ")");
        }
        if (!m.get("guarantee").equals("exactly-once") && !m.get("guarantee").equals("at-least-once")) {
            throw new UsageException("--guarantee must be exactly-once or at-least-once");
        }
        // The producer batching every engine of the benchmark gets alike (runner.Producer): by
        // default franz-go's, which the Go engines run with.
        m.putIfAbsent("producer-batch-bytes", "1000012");
        m.putIfAbsent("producer-linger-ms", "10");
        m.putIfAbsent("producer-compression", "snappy");
        positive(m, "interval-ms");
        positive(m, "parallelism");
        positive(m, "producer-batch-bytes");
        try {
            if (Long.parseLong(m.get("producer-linger-ms")) < 0) throw new NumberFormatException();
        } catch (NumberFormatException e) {
            throw new UsageException("--producer-linger-ms must be a number of milliseconds, not " + m.get("producer-linger-ms"));
        }
        if (!List.of("none", "gzip", "snappy", "lz4", "zstd").contains(m.get("producer-compression"))) {
            throw new UsageException("--producer-compression must be none, gzip, snappy, lz4 or zstd");
        }
        return m;
    }

    private static void positive(Map<String, String> m, String k) throws UsageException {
        try {
            if (Long.parseLong(m.get(k)) <= 0) throw new NumberFormatException();
        } catch (NumberFormatException e) {
            throw new UsageException("--" + k + " must be a positive integer, not " + m.get(k));
        }
    }

    static Properties config(Map<String, String> m) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, m.get("group"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, m.get("brokers"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                m.get("guarantee").equals("exactly-once") ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(m.get("interval-ms")));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(m.get("parallelism")));
        p.put(StreamsConfig.STATE_DIR_CONFIG, m.get("state-dir"));
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // Read only committed data in both modes (exactly_once_v2 sets this itself).
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.ISOLATION_LEVEL_CONFIG), "read_committed");
        // onWindowClose checks for closed windows at most once per this much wall-clock time
        // (default 1 s). 0 closes windows as soon as stream time passes them, as a watermark
        // does: no added latency, and q5's second stage sees its counts in event-time order.
        p.put("__emit.interval.ms.kstreams.windowed.aggregation__", 0L);
        // The producer batching every engine gets alike. Kafka Streams' own defaults are the
        // Java client's 16 KB batches and no compression, and a 100 ms linger of its own.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), Integer.parseInt(m.get("producer-batch-bytes")));
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), Long.parseLong(m.get("producer-linger-ms")));
        p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), m.get("producer-compression"));
        // Any other Kafka Streams, consumer or producer setting, for experiments:
        // -Dks.NAME=VALUE (e.g. -Dks.consumer.max.partition.fetch.bytes=262144) in JAVA_OPTS.
        for (String name : System.getProperties().stringPropertyNames()) {
            if (name.startsWith("ks.")) p.put(name.substring(3), System.getProperty(name));
        }
        return p;
    }

    /** The input topic's partition count: how many tasks read it, and count q5's bids. */
    static int partitions(String brokers, String topic) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        try (Admin admin = Admin.create(p)) {
            return admin.describeTopics(List.of(topic)).allTopicNames().get(60, TimeUnit.SECONDS).get(topic).partitions().size();
        }
    }

    public static void main(String[] args) {
        Map<String, String> m;
        try {
            m = parse(args);
        } catch (UsageException e) {
            if (!e.getMessage().isEmpty()) System.err.println("nexmark-kstreams: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        int inputPartitions = 2;
        if (!m.containsKey("describe")) {
            try {
                inputPartitions = partitions(m.get("brokers"), m.get("input"));
            } catch (Exception e) {
                System.err.println("nexmark-kstreams: describing " + m.get("input") + ":");
                e.printStackTrace();
                System.exit(1);
            }
        }
        StreamsBuilder builder = new StreamsBuilder();
        Queries.build(builder, m.get("query"), m.getOrDefault("input", "in"), m.getOrDefault("output", "out"), inputPartitions);
        if (m.containsKey("describe")) {
            System.out.println(builder.build().describe());
            return;
        }
        Properties props = config(m);
        Topology topology = builder.build(props);

        CountDownLatch done = new CountDownLatch(1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Signal.handle(new Signal("TERM"), s -> done.countDown());
        Signal.handle(new Signal("INT"), s -> done.countDown());

        final KafkaStreams streams = new KafkaStreams(topology, props);
        streams.setUncaughtExceptionHandler(ex -> {
            failure.compareAndSet(null, ex);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING && Boolean.getBoolean("nexmark.logAssignment")) {
                streams.metadataForLocalThreads().forEach(t -> System.err.println("nexmark-kstreams: " + t.threadName()
                        + " active " + t.activeTasks().stream().map(x -> x.taskId().toString()).sorted().toList()));
            }
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.PENDING_ERROR) {
                failure.compareAndSet(null, new IllegalStateException("Kafka Streams went from " + before + " to " + now));
                done.countDown();
            }
        });
        try {
            streams.start();
            done.await();
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
        }
        Throwable err = failure.get();
        streams.close(Duration.ofSeconds(30));
        if (err != null) {
            System.err.println("nexmark-kstreams: " + m.get("query") + " failed:");
            err.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }
}
