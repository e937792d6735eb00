//! The commit point, end to end over TCP against a scripted terminal: a Status-Information
//! is acknowledged only after the observer committed it, and never when it could not.

use super::Zvt;
use crate::config::TerminalConfig;
use crate::device::terminal::PaymentTerminal;
use crate::device::terminal::{CardCommand, CardOutcome, Committed, FlowError, FlowObserver};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zvt::{Apdu, ApduDecoder, EcrCommand, PtMessage, TransactionResult};

/// A terminal that answers one authorization with an approval, and sets `acked` when the
/// register acknowledges the Status-Information.
async fn terminal(listener: tokio::net::TcpListener, acked: Arc<AtomicBool>) {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut dec = ApduDecoder::new();
    let mut buf = [0u8; 512];
    let mut next = async |s: &mut tokio::net::TcpStream, dec: &mut ApduDecoder| -> Option<Apdu> {
        loop {
            if let Some(a) = dec.next_apdu() {
                return Some(a);
            }
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            dec.push(&buf[..n]);
        }
    };
    let cmd = next(&mut s, &mut dec).await.unwrap();
    assert!(matches!(
        EcrCommand::from_apdu(&cmd),
        Ok(EcrCommand::Authorization { .. })
    ));
    let result = TransactionResult {
        result_code: 0,
        amount: Some(1234),
        trace_number: Some(9),
        masked_pan: Some("545454******5454".into()),
        ..Default::default()
    };
    for m in [PtMessage::Ack, PtMessage::StatusInformation(result)] {
        s.write_all(&m.to_apdu().encode()).await.unwrap();
    }
    let Some(ack) = next(&mut s, &mut dec).await else {
        return;
    };
    assert_eq!(ack, EcrCommand::Ack.to_apdu());
    acked.store(true, Ordering::SeqCst);
    let done = PtMessage::Completion {
        terminal_status: None,
        terminal_id: None,
        sw_version: None,
    };
    s.write_all(&done.to_apdu().encode()).await.unwrap();
    let _ = next(&mut s, &mut dec).await;
}

/// Commits slowly (or fails), checking that nothing was acknowledged before it returned.
struct Slow {
    acked: Arc<AtomicBool>,
    fail: bool,
    seen: Option<CardOutcome>,
}

impl FlowObserver for Slow {
    type Error = &'static str;
    fn display(&mut self, _text: &str) {}
    fn slip_line(&mut self, _line: &str) {}
    async fn outcome(&mut self, outcome: &CardOutcome) -> Result<Committed, &'static str> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !self.acked.load(Ordering::SeqCst),
            "acknowledged before the commit"
        );
        self.seen = Some(outcome.clone());
        if self.fail {
            Err("the journal is full")
        } else {
            Ok(Committed::journaled())
        }
    }
}

async fn sale(fail: bool) -> (Result<(), String>, Slow) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acked = Arc::new(AtomicBool::new(false));
    let term = tokio::spawn(terminal(listener, acked.clone()));
    let config: TerminalConfig = toml::from_str(&format!(
        "id = \"t1\"\nprotocol = \"zvt\"\nport = \"tcp://{addr}\"\ntransaction_timeout = 2.0\n"
    ))
    .unwrap();
    let mut zvt = Zvt::new(config, format!("tcp://{addr}"));
    zvt.connect().await.unwrap();
    let mut obs = Slow {
        acked: acked.clone(),
        fail,
        seen: None,
    };
    let command = CardCommand::Sale {
        amount: 1234,
        currency: 985,
    };
    let r = match zvt.run("1", &command, &mut obs).await {
        Ok(end) => {
            assert_eq!(end.outcome.as_ref().and_then(|o| o.trace_number), Some(9));
            Ok(())
        }
        Err(FlowError::Observer(e)) => Err(e.to_string()),
        Err(FlowError::Device(e)) => panic!("device error: {e}"),
    };
    zvt.disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), term).await;
    obs.acked = acked;
    (r, obs)
}

#[tokio::test]
async fn the_outcome_is_acknowledged_only_after_it_is_committed() {
    let (r, obs) = sale(false).await;
    assert_eq!(r, Ok(()));
    assert!(obs.seen.is_some_and(|o| o.approved));
    assert!(obs.acked.load(Ordering::SeqCst));
}

#[tokio::test]
async fn an_outcome_that_cannot_be_committed_is_never_acknowledged() {
    let (r, obs) = sale(true).await;
    assert_eq!(r, Err("the journal is full".to_string()));
    assert!(!obs.acked.load(Ordering::SeqCst));
}
