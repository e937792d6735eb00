//! The exactly-once rule: what a printer's document counter says about an interrupted
//! document, given the last step the journal recorded. Protocol-neutral.

use crate::device::DocumentCounters;
use crate::journal::{JobKind, Step};

/// What the document counter says about an interrupted document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It was printed (exactly once).
    Printed,
    /// It was not printed: printing it again is safe.
    NotPrinted,
    /// Neither can be proved: the job goes to `needs_attention`.
    Unknown,
}

/// Decide from the counter before the document (`before`), the counter now (`after`)
/// and the last journaled step. Before `closing` the closing command was never sent,
/// so the counter must not have moved; from `closing` on, one step means it ran.
pub fn verdict(step: Step, before: u64, after: u64) -> Verdict {
    match (step, after.checked_sub(before)) {
        (Step::Closing | Step::Closed, Some(1)) => Verdict::Printed,
        (Step::Printing | Step::Closing, Some(0)) => Verdict::NotPrinted,
        _ => Verdict::Unknown,
    }
}

/// The verdict of a receipt on a printer that stores our tag on it: the counters must
/// agree with the tag. Ours and closed, with the counter up by one to its number → printed;
/// not ours with the counter unmoved → not printed; anything else → unknown.
pub fn tagged_verdict(
    step: Step,
    before: u64,
    after: u64,
    last: &crate::device::printer::TaggedReceipt,
    ours: &str,
) -> Verdict {
    let by_counter = verdict(step, before, after);
    let mine = last.closed && !ours.is_empty() && last.tag == ours;
    match by_counter {
        Verdict::Printed if mine && last.number == Some(after) => Verdict::Printed,
        Verdict::NotPrinted if !mine => Verdict::NotPrinted,
        _ => Verdict::Unknown,
    }
}

/// A receipt's verdict checked against the printer's own "last transaction completed"
/// flag, where it keeps one (Thermal's TRF): a counter that moved while the flag says the
/// last receipt was not completed proves nothing.
pub fn completion_checked(verdict: Verdict, completed: Option<bool>) -> Verdict {
    match (verdict, completed) {
        (Verdict::Printed, Some(false)) => Verdict::Unknown,
        (v, _) => v,
    }
}

/// Which document counter proves that a job of this kind was completed, if it is a printer
/// job at all.
pub fn counter(kind: JobKind, c: &DocumentCounters) -> Option<u64> {
    match kind {
        JobKind::Receipt => Some(c.last_receipt),
        JobKind::DailyReport => Some(c.daily_reports),
        JobKind::Invoice => Some(c.invoices),
        JobKind::Cash | JobKind::Printout | JobKind::PeriodicReport | JobKind::Copy => {
            Some(c.next_printout)
        }
        JobKind::Payment | JobKind::EndOfDay | JobKind::Sale => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Verdict, completion_checked, tagged_verdict, verdict};
    use crate::device::printer::TaggedReceipt;

    #[test]
    fn a_tagged_receipt_needs_the_counter_and_the_tag_to_agree() {
        let last = |closed, number, tag: &str| TaggedReceipt {
            closed,
            number,
            tag: tag.into(),
        };
        let ours = last(true, Some(8), "fd1");
        assert_eq!(
            tagged_verdict(Closing, 7, 8, &ours, "fd1"),
            Verdict::Printed
        );
        assert_eq!(tagged_verdict(Closed, 7, 8, &ours, "fd1"), Verdict::Printed);
        // Someone else's receipt moved the counter.
        assert_eq!(
            tagged_verdict(Closing, 7, 8, &last(true, Some(8), "pos"), "fd1"),
            Verdict::Unknown
        );
        // Not closed, counter unmoved: print again.
        assert_eq!(
            tagged_verdict(Closing, 7, 7, &last(false, None, ""), "fd1"),
            Verdict::NotPrinted
        );
        assert_eq!(
            tagged_verdict(Printing, 7, 7, &last(true, Some(7), "fd0"), "fd1"),
            Verdict::NotPrinted
        );
        // Our tag on the last receipt, yet the counter did not move: cannot tell.
        assert_eq!(
            tagged_verdict(Closing, 7, 7, &last(true, Some(7), "fd1"), "fd1"),
            Verdict::Unknown
        );
    }
    use crate::journal::Step::{Closed, Closing, Printing};

    #[test]
    fn counters_decide_exactly_once() {
        assert_eq!(verdict(Printing, 7, 7), Verdict::NotPrinted);
        assert_eq!(verdict(Closing, 7, 7), Verdict::NotPrinted);
        assert_eq!(verdict(Closing, 7, 8), Verdict::Printed);
        assert_eq!(verdict(Closed, 7, 8), Verdict::Printed);
        // The closing command was never sent, yet a document appeared: someone else printed.
        assert_eq!(verdict(Printing, 7, 8), Verdict::Unknown);
        // The printer acknowledged the closing command but its counter did not move.
        assert_eq!(verdict(Closed, 7, 7), Verdict::Unknown);
        assert_eq!(verdict(Closing, 7, 9), Verdict::Unknown);
        assert_eq!(
            verdict(Closing, 7, 3),
            Verdict::Unknown,
            "counter went backwards (printer replaced?)"
        );
    }

    #[test]
    fn a_moved_counter_without_the_completed_flag_proves_nothing() {
        use Verdict::*;
        assert_eq!(completion_checked(Printed, Some(false)), Unknown);
        assert_eq!(completion_checked(Printed, Some(true)), Printed);
        assert_eq!(completion_checked(Printed, None), Printed);
        // An unmoved counter says not printed whatever the flag (it may be the previous
        // receipt's).
        assert_eq!(completion_checked(NotPrinted, Some(true)), NotPrinted);
        assert_eq!(completion_checked(NotPrinted, Some(false)), NotPrinted);
        assert_eq!(completion_checked(Unknown, Some(true)), Unknown);
    }
}
