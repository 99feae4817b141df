// Confluent's Parallel Consumer on the benchmark's action-only workload (single-file program:
// `java -cp <jars> bench/ParallelConsumerHarness.java ARGS`, see bench/parallel_consumer.py).
//
// KEY ordering, maxConcurrency = the in-flight bound. For each record it does what our consumer
// does for an action: learn the order's versionTag with one GET on first sight (KEY ordering
// makes that race-free), POST the action with java.net.http.HttpClient (sendAsync, joined on the
// Parallel Consumer worker thread: that thread is the in-flight slot), and publish an outcome
// with the fields the benchmark reads. Jackson comes from the Kafka broker's jar directory.
//
// Args: bootstrap topic results group baseUrl apiKey concurrency
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.confluent.parallelconsumer.ParallelConsumerOptions;
import io.confluent.parallelconsumer.ParallelConsumerOptions.CommitMode;
import io.confluent.parallelconsumer.ParallelConsumerOptions.ProcessingOrder;
import io.confluent.parallelconsumer.ParallelStreamProcessor;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class ParallelConsumerHarness {
    static final ObjectMapper JSON = new ObjectMapper();

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], results = args[2], group = args[3];
        String baseUrl = args[4], apiKey = args[5];
        int concurrency = Integer.parseInt(args[6]);

        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        KafkaProducer<String, String> outcomes = new KafkaProducer<>(p);

        ParallelConsumerOptions<String, String> options = ParallelConsumerOptions.<String, String>builder()
                .ordering(ProcessingOrder.KEY)
                .maxConcurrency(concurrency)
                .consumer(new KafkaConsumer<>(c))
                .commitMode(CommitMode.PERIODIC_CONSUMER_ASYNCHRONOUS)
                .build();
        ParallelStreamProcessor<String, String> pc = ParallelStreamProcessor.createEosStreamProcessor(options);
        pc.subscribe(List.of(topic));

        HttpClient http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5))
                .build();
        ConcurrentHashMap<String, String> tags = new ConcurrentHashMap<>();

        pc.poll(context -> {
            ConsumerRecord<String, String> record = context.getSingleConsumerRecord();
            Instant received = Instant.now();
            long started = System.nanoTime();
            try {
                JsonNode event = JSON.readTree(record.value());
                JsonNode data = event.get("data");
                String orderId = event.get("subject").asText();
                String tag = tags.get(orderId);
                if (tag == null) {
                    HttpRequest get = request(baseUrl + "/api/v3/orders/" + orderId, apiKey).GET().build();
                    HttpResponse<String> answer = http.sendAsync(get, HttpResponse.BodyHandlers.ofString()).join();
                    tag = JSON.readTree(answer.body()).get("versionTag").asText();
                    tags.put(orderId, tag);
                }
                ObjectNode body = JSON.createObjectNode();
                body.put("action", data.get("action").asText());
                body.put("versionTag", tag);
                if (data.has("language")) body.set("language", data.get("language"));
                if (data.has("data")) body.set("data", data.get("data"));
                HttpRequest post = request(baseUrl + "/api/v3/orders/" + orderId + "/action", apiKey)
                        .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body)))
                        .build();
                HttpResponse<String> answer = http.sendAsync(post, HttpResponse.BodyHandlers.ofString()).join();
                double totalMs = (System.nanoTime() - started) / 1e6;
                ObjectNode timings = JSON.createObjectNode();
                timings.put("receivedAt", received.toString());
                timings.put("finishedAt", Instant.now().toString());
                timings.put("totalMs", totalMs);
                timings.put("engageMs", totalMs);
                ObjectNode out = JSON.createObjectNode();
                ObjectNode d = out.putObject("data");
                d.put("eventId", event.get("id").asText());
                d.put("eventType", event.get("type").asText());
                d.put("operation", "action");
                d.put("status", answer.statusCode() == 202 ? "accepted" : "rejected");
                d.put("httpStatus", answer.statusCode());
                d.set("timings", timings);
                outcomes.send(new ProducerRecord<>(results, orderId, JSON.writeValueAsString(out)));
            } catch (java.io.IOException e) {
                throw new RuntimeException(e);
            }
        });

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            pc.closeDrainFirst(Duration.ofSeconds(20));
            outcomes.close(Duration.ofSeconds(10));
            stopped.countDown();
        }));
        System.out.println("parallel consumer started: concurrency=" + concurrency);
        stopped.await();
    }

    static HttpRequest.Builder request(String url, String apiKey) {
        return HttpRequest.newBuilder(URI.create(url))
                .timeout(Duration.ofSeconds(60))
                .header("apikey", apiKey)
                .header("User-Agent", "parallel-consumer-harness/1")
                .header("Content-Type", "application/json");
    }
}
