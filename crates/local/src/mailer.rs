//! `Mailer` that writes RFC 5322 `.eml` files to an outbox directory.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use time::format_description::well_known::Rfc2822;
use tracklayer_core::clock::{Clock, Ids};
use tracklayer_core::error::MailError;
use tracklayer_core::ports::{Mail, Mailer};

pub struct OutboxMailer {
    dir: PathBuf,
    from: String,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
}

tracklayer_core::debug_fields!(OutboxMailer: dir);

impl OutboxMailer {
    pub fn new(dir: PathBuf, from: String, clock: Arc<dyn Clock>, ids: Arc<dyn Ids>) -> Self {
        Self {
            dir,
            from,
            clock,
            ids,
        }
    }
}

#[async_trait]
impl Mailer for OutboxMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        mail.check()?;
        let now = self.clock.now();
        let date = now.format(&Rfc2822).unwrap_or_default();
        let id = self.ids.token(20);
        let body = format!(
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}@tracklayer.local>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
            self.from,
            mail.to.join(", "),
            mail.subject,
            date,
            id,
            mail.text.replace('\n', "\r\n"),
        );
        let name = format!("{}-{}.eml", now.unix_timestamp(), id);
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| MailError::Transient(Box::new(e)))?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        write_private(&tmp, body.as_bytes())
            .await
            .map_err(|e| MailError::Transient(Box::new(e)))?;
        tokio::fs::rename(&tmp, self.dir.join(name))
            .await
            .map_err(|e| MailError::Transient(Box::new(e)))?;
        Ok(())
    }
}

/// Writes a new file readable by its owner only (0600, whatever the umask): a message names
/// its recipients and may carry a link that signs them in.
async fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    file.write_all(bytes).await?;
    file.flush().await?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .await?;
    }
    Ok(())
}
