// pgjdbc: what a client can observe of the session apart from policy
// decisions (backend pid, NOTIFY pid, application_name, options), then a
// long statement an administrator terminates. Prints one JSON object.
import java.sql.*;
import java.util.*;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

public class JdbcTransparency {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + System.getenv("PCG_HOST") + ":" + System.getenv("PCG_PORT") + "/"
                + System.getenv("PCG_DB") + "?sslmode=disable&ApplicationName=jdbc-tr"
                + "&options=-c%20default_transaction_isolation=serializable%20-c%20statement_timeout=4321";
        Properties p = new Properties();
        p.setProperty("user", System.getenv("PCG_USER"));
        p.setProperty("password", System.getenv("PCG_PASSWORD"));
        StringBuilder out = new StringBuilder("{");
        try (Connection c = DriverManager.getConnection(url, p)) {
            PGConnection pg = c.unwrap(PGConnection.class);
            Statement s = c.createStatement();
            out.append("\"pid_told\":").append(pg.getBackendPID());
            ResultSet r = s.executeQuery("select pg_backend_pid()");
            r.next();
            out.append(",\"pid_real\":").append(r.getInt(1));
            out.append(",\"app_reported\":\"").append(pg.getParameterStatus("application_name")).append("\"");
            r = s.executeQuery("show transaction_isolation");
            r.next();
            out.append(",\"isolation\":\"").append(r.getString(1)).append("\"");
            r = s.executeQuery("show statement_timeout");
            r.next();
            out.append(",\"statement_timeout\":\"").append(r.getString(1)).append("\"");
            s.execute("listen tr_chan");
            s.execute("notify tr_chan, 'x'");
            PGNotification[] n = pg.getNotifications(10000);
            out.append(",\"notify_pid\":").append(n == null || n.length == 0 ? "null" : String.valueOf(n[0].getPID()));
            s.execute("set statement_timeout = 0");
            String terminated = "null";
            try {
                s.executeQuery("select pg_sleep(60)");
            } catch (SQLException e) {
                terminated = "\"" + e.getSQLState() + "\"";
            }
            out.append(",\"terminated\":").append(terminated);
            out.append(",\"closed\":").append(c.isClosed());
        }
        System.out.println(out.append("}"));
    }
}
