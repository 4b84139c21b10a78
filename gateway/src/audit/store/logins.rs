//! The audit viewer's sign-ins, kept in the audit store
//! (`audit_viewer_logins`) so they survive a gateway restart and are
//! shared by gateways on one PostgreSQL store. The store holds the
//! SHA-256 of each session cookie, never the cookie: reading the store
//! does not let anyone sign in.

use sha2::{Digest, Sha256};

use super::{Store, StoreError};

/// The stored form of a session cookie.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Keeps the sign-in `token` of `user` until `expires_us` (Unix µs),
    /// and forgets sign-ins that expired before `now_us`.
    pub async fn save_login(
        &self,
        token: &str,
        user: &str,
        now_us: i64,
        expires_us: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM audit_viewer_logins WHERE expires_us <= $1")
            .bind(now_us)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO audit_viewer_logins (token_hash, user_name, expires_us) VALUES ($1, $2, $3)",
        )
        .bind(token_hash(token))
        .bind(user)
        .bind(expires_us)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the sign-in `token` (signing out).
    pub async fn end_login(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM audit_viewer_logins WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whose sign-in `token` is, if it is one and has not expired at
    /// `now_us`.
    pub async fn login_user(&self, token: &str, now_us: i64) -> Result<Option<String>, StoreError> {
        use sqlx::Row as _;
        let row = sqlx::query(
            "SELECT user_name FROM audit_viewer_logins WHERE token_hash = $1 AND expires_us > $2",
        )
        .bind(token_hash(token))
        .bind(now_us)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("user_name")).transpose()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::store::tests::temp_sqlite;
    use sqlx::Row as _;

    #[tokio::test]
    async fn sign_ins_are_kept_hashed_until_they_expire_and_outlive_the_process() {
        let (dir, url) = temp_sqlite();
        let store = Store::open(&url).await.unwrap();
        store.save_login("tok-a", "audrey", 100, 200).await.unwrap();
        assert_eq!(
            store.login_user("tok-a", 150).await.unwrap().as_deref(),
            Some("audrey")
        );
        assert_eq!(
            store.login_user("tok-b", 150).await.unwrap(),
            None,
            "unknown"
        );
        assert_eq!(
            store.login_user("tok-a", 200).await.unwrap(),
            None,
            "expired"
        );
        // Another opening of the file (a restarted gateway) knows it.
        drop(store);
        let store = Store::open(&url).await.unwrap();
        assert_eq!(
            store.login_user("tok-a", 150).await.unwrap().as_deref(),
            Some("audrey")
        );
        // The cookie itself is nowhere in the table.
        let rows = sqlx::query("SELECT token_hash FROM audit_viewer_logins")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        let stored: String = rows[0].try_get("token_hash").unwrap();
        // SHA-256 of "tok-a", hex.
        assert_eq!(
            stored,
            "4f66a4283f8bc9768c3cb97fd06d267b79315aee941c9c1727b9354509242ffe"
        );
        assert!(!stored.contains("tok-a"));
        // A later sign-in forgets the expired one.
        store.save_login("tok-c", "bob", 300, 400).await.unwrap();
        let n = sqlx::query("SELECT token_hash FROM audit_viewer_logins")
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .len();
        assert_eq!(n, 1);
        // Signing out forgets it.
        store.end_login("tok-c").await.unwrap();
        assert_eq!(store.login_user("tok-c", 350).await.unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
