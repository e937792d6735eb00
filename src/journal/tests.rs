//! The journal's own tests: submissions, idempotency, ownership, the audit log, and
//! records that cannot be read.

use super::*;
use crate::document::CashOperation;

fn journal() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(&dir.path().join("j.db")).unwrap();
    (dir, j)
}

/// A job whose request differs by `amount`.
fn new(key: Option<&str>, amount: u64) -> NewJob {
    NewJob {
        device: "fp1".into(),
        request: JobRequest::Cash(CashOperation {
            deposit: true,
            amount,
        }),
        idempotency_key: key.map(|k| IdempotencyKey::Client(k.into())),
        actor: None,
    }
}

#[test]
fn idempotent_submit_returns_the_same_job_and_conflicts_on_another_body() {
    let (_d, j) = journal();
    let (a, existed) = j.submit(new(Some("k1"), 1)).unwrap();
    assert!(!existed);
    let (b, existed) = j.submit(new(Some("k1"), 1)).unwrap();
    assert!(existed);
    assert_eq!(a.id, b.id);
    assert!(matches!(
        j.submit(new(Some("k1"), 2)),
        Err(JournalError::IdempotencyConflict(_))
    ));
}

#[test]
fn journal_is_wal_with_full_sync_and_private_mode() {
    let (d, j) = journal();
    let conn = j.lock();
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("j.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn running_jobs_come_before_queued_and_cancel_only_while_queued() {
    let (_d, j) = journal();
    let (a, _) = j.submit(new(None, 1)).unwrap();
    let (b, _) = j.submit(new(None, 2)).unwrap();
    assert_eq!(j.next_for_device("fp1").unwrap().unwrap().id, a.id);
    assert!(j.start(b.id).unwrap());
    assert_eq!(j.next_for_device("fp1").unwrap().unwrap().id, b.id);
    assert!(matches!(
        j.cancel(b.id),
        Err(JournalError::NotCancellable { .. })
    ));
    assert_eq!(j.cancel(a.id).unwrap().state, JobState::Cancelled);
    assert!(!j.start(a.id).unwrap());
}

fn actor(name: &str, _sees_all: bool) -> Actor {
    Actor {
        name: name.into(),
        role: "cashier".into(),
        operation: "POST /v1/receipts".into(),
    }
}

#[test]
fn jobs_keep_their_owner_and_keys_are_not_shared_between_cashiers() {
    let (_d, j) = journal();
    let mut a = new(Some("k1"), 1);
    a.actor = Some(actor("pos-1", false));
    let (job, _) = j.submit(a).unwrap();
    assert_eq!(job.owner.as_deref(), Some("pos-1"));
    // The same key from another till is that till's own job, even with another body.
    let mut other = new(Some("k1"), 2);
    other.actor = Some(actor("pos-2", false));
    let (theirs, existed) = j.submit(other).unwrap();
    assert!(!existed);
    assert_ne!(theirs.id, job.id);
    // A manager's key is its own too: it never replays (or blocks on) a cashier's.
    let mut boss = new(Some("k1"), 3);
    boss.actor = Some(actor("boss", true));
    let (bosses, existed) = j.submit(boss).unwrap();
    assert!(!existed);
    assert_ne!(bosses.id, job.id);
    // The owner replays its own key; a different body under it is still 409.
    let mut again = new(Some("k1"), 1);
    again.actor = Some(actor("pos-1", false));
    let (replayed, existed) = j.submit(again).unwrap();
    assert!(existed);
    assert_eq!(replayed.id, job.id);
    let mut changed = new(Some("k1"), 9);
    changed.actor = Some(actor("pos-1", false));
    assert!(matches!(
        j.submit(changed),
        Err(JournalError::IdempotencyConflict(_))
    ));
    assert_eq!(j.list(None, 10, Some("pos-1")).unwrap().len(), 1);
    assert_eq!(j.list(None, 10, Some("pos-2")).unwrap().len(), 1);
    let audit = j.audit_page(None, 10).unwrap();
    let outcomes: Vec<&str> = audit.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["replayed", "accepted", "accepted", "accepted"]);
    assert_eq!(audit[3].principal, "pos-1");
    assert_eq!(audit[3].job, Some(job.id));
}

#[test]
fn the_audit_log_is_append_only_and_pages_newest_first() {
    let (_d, j) = journal();
    for i in 0..5 {
        j.audit(
            "socket",
            Some("cashier"),
            "POST /v1/cash",
            None,
            "refused:403",
            Some(&i.to_string()),
        )
        .unwrap();
    }
    let page = j.audit_page(None, 2).unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [5, 4]);
    let page = j.audit_page(Some(4), 10).unwrap();
    assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 2, 1]);
    let conn = j.lock();
    let e = conn
        .execute("UPDATE audit SET outcome = 'accepted'", [])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    assert!(conn.execute("DELETE FROM audit", []).is_err());
}

#[test]
fn internal_keys_cannot_be_reached_by_a_client_key() {
    let (_d, j) = journal();
    let mut planted = new(Some("internal:reverse-sale:21"), 1);
    planted.actor = Some(actor("pos-1", false));
    let (cashiers, _) = j.submit(planted).unwrap();
    let mut planted = new(Some("fiscald:reverse-sale:21"), 1);
    planted.actor = Some(actor("pos-1", false));
    j.submit(planted).unwrap();
    let mut internal = new(None, 2);
    internal.idempotency_key = Some(IdempotencyKey::Internal("reverse-sale:21".into()));
    internal.actor = Some(actor("boss", true));
    let (reversal, existed) = j.submit(internal).unwrap();
    assert!(!existed, "a client key collided with the internal one");
    assert_ne!(reversal.id, cashiers.id);
}

#[test]
fn an_old_journals_keys_become_their_owners_client_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let j = Journal::open(&path).unwrap();
        let mut a = new(Some("k1"), 1);
        a.actor = Some(actor("pos-1", false));
        j.submit(a).unwrap();
        let c = j.lock();
        c.execute_batch("UPDATE jobs SET idempotency_key = 'k1'; PRAGMA user_version = 0;")
            .unwrap();
    }
    for _ in 0..2 {
        let j = Journal::open(&path).unwrap();
        let mut a = new(Some("k1"), 1);
        a.actor = Some(actor("pos-1", false));
        let (job, existed) = j.submit(a).unwrap();
        assert!(existed, "the retry after the upgrade found its job");
        assert_eq!(job.id, 1);
    }
}

#[test]
fn an_old_journal_gets_the_owner_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, device TEXT NOT NULL,
             state TEXT NOT NULL, step TEXT, request TEXT NOT NULL, request_hash TEXT NOT NULL,
             idempotency_key TEXT UNIQUE, result TEXT, error TEXT, counters_before TEXT,
             parent_id INTEGER REFERENCES jobs(id), attempts INTEGER NOT NULL DEFAULT 0,
             created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
             INSERT INTO jobs (kind, device, state, request, request_hash, created_at, updated_at)
             VALUES ('daily_report', 'fp1', 'done', '{\"document\":{}}', 'h', 't', 't');",
        )
        .unwrap();
    }
    let j = Journal::open(&path).unwrap();
    let job = j.get(1).unwrap().unwrap();
    assert_eq!(job.owner, None);
    let mut a = new(None, 1);
    a.actor = Some(actor("pos-1", false));
    assert_eq!(j.submit(a).unwrap().0.owner.as_deref(), Some("pos-1"));
}

/// Overwrite one column of job `id` behind the journal's back.
fn tamper(j: &Journal, id: JobId, column: &str, value: &str) {
    j.lock()
        .execute(
            &format!("UPDATE jobs SET {column} = ?2 WHERE id = ?1"),
            params![id, value],
        )
        .unwrap();
}

fn corrupt_problem(e: JournalError) -> String {
    assert!(e.is_journal_failure(), "{e}");
    match e {
        JournalError::Corrupt { problem, .. } => problem,
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn an_unknown_kind_state_or_step_is_an_error_that_names_it() {
    let (_d, j) = journal();
    let (a, _) = j.submit(new(None, 1)).unwrap();
    tamper(&j, a.id, "kind", "refund");
    let problem = corrupt_problem(j.get(a.id).unwrap_err());
    assert!(problem.contains("unknown kind \"refund\""), "{problem}");
    assert!(j.list(None, 10, None).is_err());

    let (b, _) = j.submit(new(None, 2)).unwrap();
    assert!(j.start(b.id).unwrap());
    tamper(&j, b.id, "step", "printed");
    let problem = corrupt_problem(j.next_for_device("fp1").unwrap_err());
    assert!(problem.contains("unknown step \"printed\""), "{problem}");

    let (c, _) = j.submit(new(None, 3)).unwrap();
    tamper(&j, c.id, "state", "paused");
    let problem = corrupt_problem(j.get(c.id).unwrap_err());
    assert!(problem.contains("unknown state \"paused\""), "{problem}");
}

#[test]
fn a_record_that_does_not_fit_its_kind_is_an_error() {
    let (_d, j) = journal();
    let (a, _) = j.submit(new(None, 1)).unwrap();
    tamper(&j, a.id, "request", r#"{"document": {"lines": ["x"]}}"#);
    let problem = corrupt_problem(j.get(a.id).unwrap_err());
    assert!(
        problem.contains("request does not fit a cash job"),
        "{problem}"
    );

    let (b, _) = j.submit(new(None, 2)).unwrap();
    tamper(&j, b.id, "result", r#"{"report_number": 1}"#);
    let problem = corrupt_problem(j.get(b.id).unwrap_err());
    assert!(
        problem.contains("result does not fit a cash job"),
        "{problem}"
    );

    let (c, _) = j.submit(new(None, 3)).unwrap();
    tamper(&j, c.id, "error", r#"{"code": "exploded", "message": "x"}"#);
    let problem = corrupt_problem(j.get(c.id).unwrap_err());
    assert!(problem.contains("error is unreadable"), "{problem}");
}

#[test]
fn steps_results_errors_and_counters_are_stored_typed_in_the_journal_s_shapes() {
    use crate::device::{DocumentCounters, ErrorCategory};
    let (_d, j) = journal();
    let (a, _) = j.submit(new(None, 500)).unwrap();
    assert!(j.start(a.id).unwrap());
    let counters = DocumentCounters {
        last_receipt: 4,
        daily_reports: 1,
        next_printout: 9,
        invoices: 2,
    };
    assert!(
        j.set_step(a.id, Step::Printing, Some(&counters), None)
            .unwrap()
    );
    let job = j.get(a.id).unwrap().unwrap();
    assert_eq!(job.step, Some(Step::Printing));
    assert_eq!(job.counters_before, Some(counters));
    // Counters journaled before invoices existed read back with no invoices.
    let old: DocumentCounters =
        serde_json::from_str(r#"{"last_receipt":4,"daily_reports":1,"next_printout":9}"#).unwrap();
    assert_eq!(old.invoices, 0);
    let result = JobResult::Printout(PrintoutPrinted {
        printout_number: 8,
        printed_at: "2026-11-26T10:15:00".into(),
        printer: "fp1".into(),
    });
    j.finish(a.id, JobState::Done, Some(&result), None).unwrap();
    let job = j.get(a.id).unwrap().unwrap();
    assert_eq!((job.state, job.step), (JobState::Done, None));
    assert_eq!(job.result, Some(result));
    let stored: String = j
        .lock()
        .query_row(
            "SELECT request || result FROM jobs WHERE id = ?1",
            [a.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        stored,
        r#"{"document":{"amount":500,"deposit":true}}{"printed_at":"2026-11-26T10:15:00","printer":"fp1","printout_number":8}"#
    );

    let (b, _) = j.submit(new(None, 600)).unwrap();
    let error = DeviceError::new(ErrorCategory::PaperOut, "no paper", Some(7));
    j.finish(b.id, JobState::Failed, None, Some(&error))
        .unwrap();
    assert_eq!(j.get(b.id).unwrap().unwrap().error, Some(error));
}

/// A sale on `t1` whose payment was approved, with its receipt queued on `fp1`.
fn approved_sale(j: &Journal) -> (JobId, JobId) {
    use crate::document::{Method, Payment, Receipt};
    let receipt = Receipt {
        lines: Vec::new(),
        payments: vec![Payment {
            method: Method::Card,
            amount: 3990,
        }],
        buyer_nip: None,
        total: 3990,
        ..Receipt::default()
    };
    let request = JobRequest::Sale(SaleRequest {
        receipt: receipt.clone(),
        printer: "fp1".into(),
        payment: SalePayment {
            kind: "sale".into(),
            amount: 3990,
            currency: 985,
        },
    });
    let (sale, _) = j
        .submit(NewJob {
            device: "t1".into(),
            request,
            idempotency_key: None,
            actor: Some(actor("pos-1", false)),
        })
        .unwrap();
    assert!(j.start(sale.id).unwrap());
    let payment = CardOutcome {
        approved: true,
        amount: Some(3990),
        trace_number: Some(77),
        terminal_receipt_number: Some(12),
        terminal: "t1".into(),
        ..CardOutcome::default()
    };
    let card = CardRecord {
        terminal: "t1".into(),
        trace_number: 77,
        receipt_number: Some(12),
        result: serde_json::json!({"result_code": 0}),
    };
    let partial = JobResult::Sale(SaleResult {
        payment: Some(payment.clone()),
        ..SaleResult::default()
    });
    j.record_card_result(sale.id, &card, Step::Approved, &partial)
        .unwrap();
    assert_eq!(j.job_for_trace("t1", 77).unwrap(), Some(sale.id));
    let receipt_id = j
        .queue_sale_receipt(sale.id, "fp1", &receipt, None, &payment)
        .unwrap();
    (sale.id, receipt_id)
}

#[test]
fn a_sale_whose_receipt_misses_its_deadline_needs_attention_and_can_be_reversed() {
    let (_d, j) = journal();
    let (sale, receipt) = approved_sale(&j);
    let queued = j.get(receipt).unwrap().unwrap();
    assert_eq!(
        (queued.kind, queued.parent_id, queued.owner.as_deref()),
        (JobKind::Receipt, Some(sale), Some("pos-1"))
    );
    // The sale waits for the printer; the terminal does not pick it up again.
    assert!(j.next_for_device("t1").unwrap().is_none());
    assert_eq!(j.expire_sales("9999").unwrap(), vec![sale]);
    let receipt = j.get(receipt).unwrap().unwrap();
    assert_eq!(receipt.state, JobState::Cancelled);
    let job = j.get(sale).unwrap().unwrap();
    assert_eq!(job.state, JobState::NeedsAttention);
    assert_eq!(
        job.error.as_ref().map(|e| e.category),
        Some(crate::device::ErrorCategory::ReceiptNotPrinted)
    );
    let Ok(crate::sales::Reversal::Allowed(plan)) = crate::sales::reversal(&job) else {
        panic!("the sale is reversible");
    };
    assert_eq!(plan.receipt_job, Some(receipt.id));
    j.note_sale_reversal(sale, 99).unwrap();
    let job = j.get(sale).unwrap().unwrap();
    assert_eq!(
        job.result
            .as_ref()
            .and_then(JobResult::as_sale)
            .and_then(|s| s.reversal_job),
        Some(99)
    );
}

#[test]
fn a_printed_receipt_settles_its_sale_in_the_same_commit() {
    let (_d, j) = journal();
    let (sale, receipt) = approved_sale(&j);
    assert!(j.start(receipt).unwrap());
    let printed = JobResult::Receipt(ReceiptPrinted {
        receipt_number: 5,
        total: 3990,
        printed_at: "2026-11-26T10:15:00".into(),
        printer: "fp1".into(),
        printer_serial_number: Some("ABC 12345678".into()),
        ..Default::default()
    });
    assert_eq!(
        j.finish(receipt, JobState::Done, Some(&printed), None)
            .unwrap(),
        Some(sale)
    );
    let job = j.get(sale).unwrap().unwrap();
    assert_eq!(job.state, JobState::Done);
    let result = job.result.as_ref().and_then(JobResult::as_sale).unwrap();
    assert_eq!(
        result.receipt.clone().flatten().map(|r| r.receipt_number),
        Some(5)
    );
    assert!(j.expire_sales("9999").unwrap().is_empty());
}

#[tokio::test]
async fn a_device_write_is_retried_only_while_the_failure_is_transient() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let (_d, j) = journal();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let tries = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&tries);
    let done = j
        .run_until_committed(&shutdown, "test", move |_| {
            match counted.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(JournalError::Commit("disk full".into())),
                n => Ok(n),
            }
        })
        .await
        .unwrap();
    assert_eq!(done, 2);
    let corrupt = j
        .run_until_committed(&shutdown, "test", |_| -> Result<(), _> {
            Err(JournalError::Corrupt {
                job: 1,
                problem: "unknown kind".into(),
            })
        })
        .await;
    assert!(matches!(corrupt, Err(JournalError::Corrupt { .. })));
    shutdown.cancel();
    let stopped = j
        .run_until_committed(&shutdown, "test", |_| -> Result<(), _> {
            Err(JournalError::Commit("disk full".into()))
        })
        .await;
    assert!(matches!(stopped, Err(JournalError::Commit(_))));
}

#[tokio::test]
async fn unauthenticated_refusals_are_counted_per_window_and_pruned() {
    let (_d, j) = journal();
    j.audit(
        "pos-1",
        Some("cashier"),
        "POST /v1/cash",
        None,
        "refused:403",
        None,
    )
    .unwrap();
    let writer = AuditWriter::start(j.clone()).unwrap();
    for i in 0..3000 {
        writer.append_unauthenticated(Unauthenticated {
            listener: if i % 3 == 0 { "socket" } else { "tcp" },
            operation: format!("GET /v1/\u{1b}[31m{}", "x".repeat(200)),
            outcome: "refused:401".into(),
            detail: "unauthorized",
        });
    }
    writer.flush().await;
    let rows = j.audit_page(None, 100).unwrap();
    let windows: Vec<&AuditEntry> = rows.iter().filter(|e| e.count.is_some()).collect();
    assert!(windows.len() <= 4, "{} rows", windows.len());
    let sum = |l: &str| -> i64 {
        windows
            .iter()
            .filter(|e| e.principal == l)
            .filter_map(|e| e.count)
            .sum()
    };
    assert_eq!((sum("tcp"), sum("socket")), (2000, 1000));
    let w = windows[0];
    assert!(w.operation.starts_with("GET /v1/?[31m"), "{}", w.operation);
    assert!(w.operation.chars().count() <= super::audit::SAMPLE_CHARS + 1);
    assert!(w.window_start.as_deref() < w.window_end.as_deref());
    // Other rows stay immutable; a window's row cannot be rewritten either.
    let conn = j.lock();
    assert!(
        conn.execute("UPDATE audit SET outcome = 'x' WHERE count IS NULL", [])
            .is_err()
    );
    assert!(
        conn.execute(
            "UPDATE audit SET operation = 'x' WHERE count IS NOT NULL",
            []
        )
        .is_err()
    );
    assert!(
        conn.execute("UPDATE audit SET count = 0 WHERE count IS NOT NULL", [])
            .is_err()
    );
    assert!(
        conn.execute("DELETE FROM audit WHERE count IS NULL", [])
            .is_err()
    );
    drop(conn);
    // Retention removes aggregated rows only.
    assert_eq!(j.prune_audit_windows("9999").unwrap(), windows.len());
    let left = j.audit_page(None, 100).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].principal, "pos-1");
}
