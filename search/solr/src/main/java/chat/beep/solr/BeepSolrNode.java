package chat.beep.solr;

import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.solr.embedded.JettyConfig;
import org.apache.solr.embedded.JettySolrRunner;

/**
 * A standalone Solr node for Beep's tests and small installs: Jetty + Solr at /solr on the given port,
 * with the core admin API; cores are created from the configsets directory (configSetBaseDir in
 * solr.xml). Usage: BeepSolrNode SOLR_HOME PORT CONFIGSETS_DIR. Prints "ready PORT" once it serves.
 */
public final class BeepSolrNode {
  private BeepSolrNode() {}

  public static void main(String[] args) throws Exception {
    Path home = Path.of(args[0]).toAbsolutePath();
    int port = Integer.parseInt(args[1]);
    Path configsets = Path.of(args[2]).toAbsolutePath();
    Files.createDirectories(home);
    Files.writeString(
        home.resolve("solr.xml"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<solr>\n"
            + "  <str name=\"configSetBaseDir\">" + configsets + "</str>\n"
            + "  <str name=\"allowPaths\">*</str>\n"
            + "  <str name=\"allowUrls\">http://127.0.0.1:" + port + "/solr</str>\n"
            + "</solr>\n");
    JettySolrRunner node =
        new JettySolrRunner(
            home.toString(), JettyConfig.builder().setPort(port).setContext("/solr").stopAtShutdown(true).build());
    node.start();
    System.out.println("ready " + node.getLocalPort());
    System.out.flush();
    Thread.currentThread().join();
  }
}
