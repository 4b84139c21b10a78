//! E-mail to approvers (lettre over SMTP: STARTTLS, implicit TLS, or plain
//! for a local relay): a new request is mailed to the addresses configured
//! for its approver groups, with the statement, the reasons and the link.
//! Sending runs in the background; a failing server never holds up a
//! request.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::EmailConfig;
use crate::store::Request;

/// Why the mailer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The password file cannot be read.
    #[error("email.password_file {0}: {1}")]
    Password(String, String),
    /// The SMTP settings are not usable.
    #[error("email: {0}")]
    Smtp(String),
}

/// The mailer.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    cfg: EmailConfig,
    public_url: String,
}

impl Mailer {
    /// The mailer for `cfg`.
    pub fn new(cfg: EmailConfig, public_url: String) -> Result<Self, MailError> {
        let builder = match cfg.security.as_str() {
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host),
            "none" => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &cfg.host,
            )),
            _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host),
        }
        .map_err(|e| MailError::Smtp(e.to_string()))?
        .port(cfg.port);
        let builder = match (&cfg.username, &cfg.password_file) {
            (Some(user), Some(file)) => {
                let pw = std::fs::read_to_string(file).map_err(|e| {
                    MailError::Password(file.display().to_string(), e.kind().to_string())
                })?;
                builder.credentials(Credentials::new(user.clone(), pw.trim().to_string()))
            }
            _ => builder,
        };
        Ok(Self {
            transport: builder.build(),
            cfg,
            public_url,
        })
    }

    /// Mails the approvers of `r` (in the background).
    pub fn request_created(&self, r: &Request) {
        let to: Vec<String> = r
            .groups
            .iter()
            .filter_map(|g| self.cfg.groups.get(g))
            .flatten()
            .cloned()
            .collect();
        if to.is_empty() {
            return;
        }
        let link = format!("{}/requests/{}", self.public_url, r.id);
        let excerpt: String = r.statement.chars().take(60).collect();
        let body = format!(
            "{} asks to run on {} ({}):\n\n    {}\n\nWhy approval is needed: {}\nApprovers: {} (quorum {})\n\nApprove or reject: {}\n",
            r.requester.email,
            r.connection,
            r.database,
            r.statement.replace('\n', "\n    "),
            r.reasons.join("; "),
            r.groups.join(", "),
            r.quorum,
            link
        );
        let mut msg = Message::builder().subject(format!("Approval needed: {excerpt}"));
        match self.cfg.from.parse() {
            Ok(from) => msg = msg.from(from),
            Err(e) => {
                tracing::error!(error = %e, "email.from is not an address");
                return;
            }
        }
        for addr in &to {
            match addr.parse() {
                Ok(a) => msg = msg.to(a),
                Err(e) => {
                    tracing::warn!(address = %addr, error = %e, "skipping a bad approver address")
                }
            }
        }
        let msg = match msg.header(ContentType::TEXT_PLAIN).body(body) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(request = %r.id, error = %e, "cannot build the approval e-mail");
                return;
            }
        };
        let transport = self.transport.clone();
        let id = r.id.clone();
        tokio::spawn(async move {
            match transport.send(msg).await {
                Ok(_) => tracing::info!(request = %id, "approval e-mail sent"),
                Err(e) => tracing::warn!(request = %id, error = %e, "approval e-mail failed"),
            }
        });
    }
}
