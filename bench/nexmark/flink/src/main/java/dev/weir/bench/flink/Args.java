package dev.weir.bench.flink;

import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/** The command line: the contract with the Go runner. */
final class Args {
    String brokers;
    String query;
    String input;
    String output;
    String group;
    boolean exactlyOnce;
    long intervalMs = 1000;
    int parallelism = 2;
    String stateDir;
    // The producer batching every engine of the benchmark gets alike (runner.Producer): by
    // default franz-go's, which the Go engines run with.
    long producerBatchBytes = 1000012;
    long producerLingerMs = 10;
    String producerCompression = "snappy";

    static final Set<String> QUERIES = Set.of("q0", "q1", "q2", "q3", "q5", "q7", "q8", "q11", "q12");

    private static final Set<String> FLAGS =
            Set.of(
                    "brokers",
                    "query",
                    "input",
                    "output",
                    "group",
                    "guarantee",
                    "interval-ms",
                    "parallelism",
                    "state-dir",
                    "producer-batch-bytes",
                    "producer-linger-ms",
                    "producer-compression");

    static final Set<String> CODECS = Set.of("none", "gzip", "snappy", "lz4", "zstd");

    /** Parses --name value (or --name=value) pairs; throws IllegalArgumentException on a mistake. */
    static Args parse(String[] argv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            String s = argv[i];
            if (!s.startsWith("--") || s.length() == 2) {
                throw new IllegalArgumentException("unexpected argument " + s);
            }
            String name = s.substring(2);
            String value;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else {
                if (i + 1 >= argv.length) {
                    throw new IllegalArgumentException("flag --" + name + " needs a value");
                }
                value = argv[++i];
            }
            if (!FLAGS.contains(name)) {
                throw new IllegalArgumentException("unknown flag --" + name);
            }
            if (m.put(name, value) != null) {
                throw new IllegalArgumentException("flag --" + name + " given twice");
            }
        }
        Args a = new Args();
        a.brokers = required(m, "brokers");
        a.query = required(m, "query");
        if (!QUERIES.contains(a.query)) {
            throw new IllegalArgumentException("unknown query " + a.query);
        }
        a.input = required(m, "input");
        a.output = required(m, "output");
        a.group = required(m, "group");
        String g = required(m, "guarantee");
        switch (g) {
            case "exactly-once":
                a.exactlyOnce = true;
                break;
            case "at-least-once":
                a.exactlyOnce = false;
                break;
            default:
                throw new IllegalArgumentException(
                        "--guarantee must be exactly-once or at-least-once, not " + g);
        }
        if (m.containsKey("interval-ms")) {
            a.intervalMs = positive(m, "interval-ms");
        }
        if (m.containsKey("parallelism")) {
            a.parallelism = (int) positive(m, "parallelism");
        }
        a.stateDir = required(m, "state-dir");
        if (m.containsKey("producer-batch-bytes")) {
            a.producerBatchBytes = positive(m, "producer-batch-bytes");
        }
        if (m.containsKey("producer-linger-ms")) {
            String v = m.get("producer-linger-ms");
            try {
                a.producerLingerMs = Long.parseLong(v);
            } catch (NumberFormatException e) {
                a.producerLingerMs = -1;
            }
            if (a.producerLingerMs < 0) {
                throw new IllegalArgumentException(
                        "--producer-linger-ms must be a number of milliseconds, not " + v);
            }
        }
        if (m.containsKey("producer-compression")) {
            a.producerCompression = m.get("producer-compression");
            if (!CODECS.contains(a.producerCompression)) {
                throw new IllegalArgumentException(
                        "--producer-compression must be one of " + CODECS + ", not "
                                + a.producerCompression);
            }
        }
        return a;
    }

    private static String required(Map<String, String> m, String name) {
        String v = m.get(name);
        if (v == null || v.isEmpty()) {
            throw new IllegalArgumentException("missing --" + name);
        }
        return v;
    }

    private static long positive(Map<String, String> m, String name) {
        String v = m.get(name);
        long n;
        try {
            n = Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " must be a number, not " + v);
        }
        if (n <= 0 || n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("--" + name + " must be positive, not " + v);
        }
        return n;
    }
}
