package dev.weir.bench.kstreams;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * Helpers for checking the baseline by hand (not used by the benchmark runner):
 *
 * <pre>
 * java -cp 'target/nexmark-kstreams.jar:target/lib/*' dev.weir.bench.kstreams.Tool CMD ...
 *   create BROKERS PARTITIONS TOPIC...       create topics (replication 1, retention.ms -1)
 *   delete BROKERS TOPIC...                  delete topics
 *   append BROKERS TOPIC AT                  write a later batch of events from AT (RFC 3339),
 *                                            spanning 200 s of event time, to every partition,
 *                                            so that every window of the earlier events closes
 *   dump BROKERS TOPIC [BEFORE] [-ts]        print each committed record's value as JSON with
 *                                            sorted keys, sorted; only records whose timestamp
 *                                            is before BEFORE (RFC 3339); -ts prefixes each
 *                                            with its record timestamp
 *   watch BROKERS GROUP TOPIC [TIMEOUT_S]    poll GROUP's committed offsets on TOPIC until they
 *                                            reach its end; print the rate
 *   drain BROKERS GROUP [TIMEOUT_S]          poll until GROUP's committed offsets on every topic
 *                                            it reads (input and repartition topics) are within 1
 *                                            of their ends (a transaction marker): the whole
 *                                            topology has caught up
 * </pre>
 */
public final class Tool {
    private Tool() {}

    public static void main(String[] a) throws Exception {
        if (a.length < 2) usage();
        String brokers = a[1];
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        switch (a[0]) {
            case "create":
                try (Admin admin = Admin.create(p)) {
                    int parts = Integer.parseInt(a[2]);
                    List<NewTopic> ts = new ArrayList<>();
                    // Keep records for ever: Nexmark's event times are in 2024, and the broker's
                    // default retention (7 days, by record timestamp) would delete them.
                    for (int i = 3; i < a.length; i++) ts.add(new NewTopic(a[i], parts, (short) 1).configs(Map.of("retention.ms", "-1")));
                    admin.createTopics(ts).all().get();
                }
                break;
            case "delete":
                try (Admin admin = Admin.create(p)) {
                    admin.deleteTopics(Arrays.asList(a).subList(2, a.length)).all().get();
                }
                break;
            case "append": append(p, a[2], Instant.parse(a[3]).toEpochMilli()); break;
            case "dump": dump(p, a); break;
            case "watch": watch(p, a[2], a[3], a.length > 4 ? Integer.parseInt(a[4]) : 600); break;
            case "drain": drain(p, a[2], a.length > 3 ? Integer.parseInt(a[3]) : 600); break;
            default: usage();
        }
    }

    private static void usage() {
        System.err.println("usage: Tool create|delete|append|dump|watch BROKERS ... (see the class comment)");
        System.exit(2);
    }

    /** A later batch: per partition and per 2 s of event time, persons, auctions and bids. */
    private static void append(Properties base, String topic, long at) throws Exception {
        Properties p = new Properties();
        p.putAll(base);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        try (KafkaProducer<byte[], byte[]> prod = new KafkaProducer<>(p)) {
            int parts = prod.partitionsFor(topic).size();
            long id = 900_000_000L;
            Json.Out o = new Json.Out();
            for (long t = at; t <= at + 200_000; t += 2_000) {
                for (int part = 0; part < parts; part++) {
                    for (int i = 0; i < 64; i++, id++) {
                        long ts = t + i;
                        String v;
                        switch (i % 3) {
                            case 0:
                                v = "{\"event_type\":0,\"person\":" + new String(o.begin().num("id", id).str("name", "late")
                                        .str("emailAddress", "late@example.com").str("creditCard", "0").str("city", "Nowhere")
                                        .str("state", "CA").time("dateTime", ts).str("extra", "").end(), StandardCharsets.UTF_8)
                                        + ",\"auction\":null,\"bid\":null}";
                                break;
                            case 1:
                                v = "{\"event_type\":1,\"person\":null,\"auction\":" + new String(o.begin().num("id", id)
                                        .str("itemName", "late").str("description", "").num("initialBid", 1).num("reserve", 1)
                                        .time("dateTime", ts).time("expires", ts + 10_000).num("seller", id - 1).num("category", 10)
                                        .str("extra", "").end(), StandardCharsets.UTF_8) + ",\"bid\":null}";
                                break;
                            default:
                                v = "{\"event_type\":2,\"person\":null,\"auction\":null,\"bid\":" + new String(o.begin()
                                        .num("auction", id).num("bidder", id).num("price", 1).str("channel", "late").str("url", "")
                                        .time("dateTime", ts).str("extra", "").end(), StandardCharsets.UTF_8) + "}";
                        }
                        prod.send(new ProducerRecord<>(topic, part, ts, null, v.getBytes(StandardCharsets.UTF_8)));
                    }
                }
            }
            prod.flush();
        }
    }

    private static void dump(Properties base, String[] a) throws Exception {
        String topic = a[2];
        long before = Long.MAX_VALUE;
        boolean withTs = false;
        for (int i = 3; i < a.length; i++) {
            if (a[i].equals("-ts")) withTs = true;
            else before = Instant.parse(a[i]).toEpochMilli();
        }
        Properties p = new Properties();
        p.putAll(base);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 5000);
        ObjectMapper om = new ObjectMapper().configure(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS, true);
        List<String> lines = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = c.partitionsFor(topic).stream()
                    .map(pi -> new TopicPartition(topic, pi.partition())).collect(Collectors.toList());
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            Map<TopicPartition, Long> left = new HashMap<>(end);
            left.entrySet().removeIf(e -> e.getValue() == 0);
            while (!left.isEmpty()) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    if (r.timestamp() < before) {
                        Object v = om.readValue(r.value(), Object.class);
                        String s = om.writeValueAsString(v);
                        lines.add(withTs ? Instant.ofEpochMilli(r.timestamp()) + " " + s : s);
                    }
                }
                for (TopicPartition tp : new ArrayList<>(left.keySet())) {
                    if (c.position(tp) >= left.get(tp)) left.remove(tp);
                }
            }
        }
        Collections.sort(lines);
        StringBuilder sb = new StringBuilder();
        for (String l : lines) sb.append(l).append('\n');
        System.out.print(sb);
    }

    private static void drain(Properties p, String group, int timeoutS) throws Exception {
        long t0 = System.nanoTime();
        try (Admin admin = Admin.create(p)) {
            while (true) {
                Map<TopicPartition, OffsetAndMetadata> off = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
                Map<TopicPartition, OffsetSpec> spec = new HashMap<>();
                for (TopicPartition tp : off.keySet()) spec.put(tp, OffsetSpec.latest());
                long lag = 0;
                boolean done = !off.isEmpty();
                for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e : admin.listOffsets(spec).all().get().entrySet()) {
                    OffsetAndMetadata c = off.get(e.getKey());
                    long l = e.getValue().offset() - (c == null ? 0 : c.offset());
                    lag += Math.max(0, l);
                    if (l > 1) done = false;
                }
                double s = (System.nanoTime() - t0) / 1e9;
                if (done) {
                    System.out.printf("drained: %.1f s after drain start%n", s);
                    return;
                }
                if (s > timeoutS) {
                    System.out.println("timeout: lag " + lag);
                    System.exit(1);
                }
                Thread.sleep(100);
            }
        }
    }

    private static void watch(Properties p, String group, String topic, int timeoutS) throws Exception {
        try (Admin admin = Admin.create(p)) {
            int parts = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
            Map<TopicPartition, OffsetSpec> spec = new HashMap<>();
            for (int i = 0; i < parts; i++) spec.put(new TopicPartition(topic, i), OffsetSpec.latest());
            long endSum = 0;
            for (ListOffsetsResult.ListOffsetsResultInfo info : admin.listOffsets(spec).all().get().values()) endSum += info.offset();
            long t0 = System.nanoTime(), first = -1, firstOff = 0, last = 0;
            TreeMap<Long, Long> samples = new TreeMap<>();
            while (true) {
                long sum = 0;
                Map<TopicPartition, OffsetAndMetadata> off = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
                for (Map.Entry<TopicPartition, OffsetAndMetadata> e : off.entrySet()) {
                    if (e.getKey().topic().equals(topic) && e.getValue() != null) sum += e.getValue().offset();
                }
                long now = System.nanoTime();
                if (sum > 0 && first < 0) {
                    first = now;
                    firstOff = sum;
                }
                if (sum != last) {
                    samples.put((now - t0) / 1_000_000, sum);
                    last = sum;
                }
                if (sum >= endSum) {
                    double all = (now - t0) / 1e9, fromFirst = (now - first) / 1e9;
                    System.out.printf("done: %d records; %.1f s since watch start (%.0f rec/s); %.1f s since first commit"
                                    + " (%d then; %.0f rec/s after it)%n", endSum, all, endSum / all, fromFirst, firstOff,
                            fromFirst > 0 ? (endSum - firstOff) / fromFirst : Double.NaN);
                    System.out.println("commits (ms since start -> committed): " + samples);
                    return;
                }
                if ((now - t0) / 1e9 > timeoutS) {
                    System.out.println("timeout: committed " + sum + " of " + endSum + "; " + samples);
                    System.exit(1);
                }
                Thread.sleep(100);
            }
        }
    }
}
