use super::*;

pub async fn sends_a_notification(m: &dyn Mailer) {
    let mail = Mail {
        to: vec!["admin@example.com".into()],
        subject: "Your data export is ready".into(),
        text: "Download it within 7 days.".into(),
    };
    m.send(&mail).await.unwrap();
}

pub async fn rejects_a_mail_without_recipients(m: &dyn Mailer) {
    let mail = Mail {
        to: vec![],
        subject: "nobody".into(),
        text: "".into(),
    };
    assert!(matches!(
        m.send(&mail).await.unwrap_err(),
        MailError::Rejected(_)
    ));
}
