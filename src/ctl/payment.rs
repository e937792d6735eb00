//! `fiscald ctl payment`: a card payment on the terminal (`--type --amount`), and
//! `payment resolve ID --approved --transaction-id X | --not-charged [--note ...]`: a person
//! records what the terminal's own printout says about a payment whose outcome the terminal
//! could not tell (`needs_attention`), through `POST /v1/payments/{id}/resolve` (the manager
//! role).

use super::{ANSWER_TIMEOUT, Ctl, EXIT_OK, Failure, R, body_bytes, decode, emit, parse_amount};
use crate::api::types::{JobView, PaymentBody};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PaymentArgs {
    #[command(subcommand)]
    pub action: Option<PaymentCmd>,
    /// What kind of payment.
    #[arg(long = "type", value_enum, required = true)]
    pub kind: Option<PaymentType>,
    /// Grosze (1250), or złoty with a decimal point (12.50).
    #[arg(long, required = true)]
    pub amount: Option<String>,
    /// PLN or EUR (default: the terminal's).
    #[arg(long)]
    pub currency: Option<String>,
    /// For a reversal: the terminal's receipt number of the payment to reverse.
    #[arg(long)]
    pub original_receipt_number: Option<u64>,
    /// The terminal (may be left out when only one is configured).
    #[arg(long)]
    pub terminal: Option<String>,
    /// A reference printed on the terminal's slip.
    #[arg(long)]
    pub reference: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PaymentCmd {
    /// Record what the terminal's own printout says about a payment in needs_attention
    /// (manager): `--approved --transaction-id X` or `--not-charged`.
    Resolve(ResolveArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PaymentType {
    Sale,
    Refund,
    Reversal,
}

/// The arguments of `payment resolve`.
#[derive(Args, Debug)]
#[command(group(
    clap::ArgGroup::new("outcome")
        .required(true)
        .args(["approved", "not_charged"])
))]
pub struct ResolveArgs {
    /// The payment's (or card sale's) job id.
    pub id: i64,
    /// The terminal's printout shows the payment approved (give --transaction-id).
    #[arg(long, requires = "transaction_id")]
    pub approved: bool,
    /// The transaction id on the terminal's printout.
    #[arg(long, value_name = "ID", conflicts_with = "not_charged")]
    pub transaction_id: Option<String>,
    /// The terminal did not charge the card.
    #[arg(long)]
    pub not_charged: bool,
    /// A note kept with the decision (e.g. where the printout is).
    #[arg(long)]
    pub note: Option<String>,
}

/// The API's body for `a`.
pub fn resolve_body(a: &ResolveArgs) -> Value {
    let mut body = if a.approved {
        json!({"outcome": "approved", "transaction_id": a.transaction_id})
    } else {
        json!({"outcome": "not_charged"})
    };
    if let Some(note) = &a.note {
        body["note"] = json!(note);
    }
    body
}

impl Ctl {
    /// A payment (`--type --amount`), or `payment resolve`.
    pub(super) async fn payment(&mut self, p: PaymentArgs) -> R<u8> {
        if let Some(PaymentCmd::Resolve(a)) = &p.action {
            return self.resolve(a).await;
        }
        let (Some(kind), Some(amount)) = (p.kind, &p.amount) else {
            return Err(Failure::bad_input(
                "payment: give --type and --amount, or `payment resolve`",
            ));
        };
        let body = PaymentBody {
            kind: match kind {
                PaymentType::Sale => "sale",
                PaymentType::Refund => "refund",
                PaymentType::Reversal => "reversal",
            }
            .into(),
            amount: parse_amount(amount).map_err(Failure::bad_input)?,
            currency: p.currency,
            original_receipt_number: p.original_receipt_number,
            terminal: p.terminal,
            reference: p.reference,
        };
        self.submit("/v1/payments", body_bytes(&body)).await
    }

    /// Record the decision; exit 0 once it is recorded (the job then is `done` or
    /// `failed`), 2 when the API refuses it (404 unknown, 409 not in needs_attention, 422,
    /// 403 without the manager role).
    pub(super) async fn resolve(&mut self, a: &ResolveArgs) -> R<u8> {
        let path = format!("/v1/payments/{}/resolve", a.id);
        let body = resolve_body(a).to_string().into_bytes();
        let (_, answer) = self
            .client
            .call("POST", &path, Some(body), &[], ANSWER_TIMEOUT)
            .await?;
        let job: JobView = decode(&format!("POST {path}"), answer)?;
        if self.json {
            self.print_json(&job)?;
        } else {
            let what = if a.approved {
                "recorded as approved"
            } else {
                "recorded as not charged"
            };
            emit(&format!(
                "job {} ({}) {what}: {}",
                job.id,
                job.kind.as_str(),
                job.state.as_str()
            ))?;
        }
        Ok(EXIT_OK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        a: ResolveArgs,
    }

    fn parse(args: &[&str]) -> Result<ResolveArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("resolve").chain(args.iter().copied())).map(|c| c.a)
    }

    #[test]
    fn the_body_is_the_apis() {
        let a = parse(&["7", "--approved", "--transaction-id", "000123"]).unwrap();
        assert_eq!(
            resolve_body(&a),
            json!({"outcome": "approved", "transaction_id": "000123"})
        );
        let a = parse(&["7", "--not-charged", "--note", "no slip"]).unwrap();
        assert_eq!(
            resolve_body(&a),
            json!({"outcome": "not_charged", "note": "no slip"})
        );
    }

    #[test]
    fn one_outcome_and_a_transaction_id_only_with_approved() {
        for bad in [
            &["7"][..],
            &["7", "--approved"],
            &["7", "--approved", "--not-charged", "--transaction-id", "1"],
            &["7", "--not-charged", "--transaction-id", "1"],
            &["x", "--not-charged"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
