// JDBC (pgjdbc) against the gateway: rows, server-side prepared statements,
// a denied statement followed by a working one, and a query timeout that
// cancels. Prints one JSON object.
import java.sql.*;
import java.util.*;

public class JdbcClient {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + System.getenv("PCG_HOST") + ":" + System.getenv("PCG_PORT") + "/"
                + System.getenv("PCG_DB") + "?sslmode=disable&prepareThreshold=2";
        Properties p = new Properties();
        p.setProperty("user", System.getenv("PCG_USER"));
        p.setProperty("password", System.getenv("PCG_PASSWORD"));
        StringBuilder out = new StringBuilder("{");
        try (Connection c = DriverManager.getConnection(url, p)) {
            Statement s = c.createStatement();
            ResultSet r = s.executeQuery("select 1");
            r.next();
            out.append("\"one\":").append(r.getInt(1));
            List<String> names = new ArrayList<>();
            try (PreparedStatement ps = c.prepareStatement("select name from items where id = ?")) {
                for (int i = 1; i <= 5; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        names.add("\"" + rs.getString(1) + "\"");
                    }
                }
            }
            out.append(",\"prepared\":[").append(String.join(",", names)).append("]");
            String denied = "null";
            try {
                s.executeUpdate("delete from items");
            } catch (SQLException e) {
                denied = "\"" + e.getSQLState() + "\"";
            }
            out.append(",\"denied\":").append(denied);
            r = s.executeQuery("select count(*) from items");
            r.next();
            out.append(",\"after\":").append(r.getInt(1));
            String cancelled = "null";
            long t0 = System.nanoTime();
            try (Statement slow = c.createStatement()) {
                slow.setQueryTimeout(2);
                slow.execute("select pg_sleep(60)");
            } catch (SQLException e) {
                cancelled = "\"" + e.getSQLState() + "\"";
            }
            out.append(",\"cancelled\":").append(cancelled);
            out.append(",\"cancel_secs\":").append((System.nanoTime() - t0) / 1e9);
            r = s.executeQuery("select 2");
            r.next();
            out.append(",\"after_cancel\":").append(r.getInt(1));
        }
        System.out.println(out.append("}"));
    }
}
