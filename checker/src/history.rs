//! Operation histories: one JSON object per line, the input of the
//! linearizability checker (schema in docs/bench.md).

use std::io::{BufRead, Write};

use genericsmr::command::{Command, Op, Outcome as CmdOutcome};
use serde::{Deserialize, Serialize};

/// How an operation ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Answered with success.
    Ok,
    /// Certainly not applied.
    Fail,
    /// No answer: it may have taken effect, at any time after its invocation.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The client's session id.
    pub client: u64,
    /// The operation's sequence number in that session.
    pub seq: u64,
    /// The `seq` of this operation's issue-order (chain) predecessor: the most
    /// recent operation the same client had issued and not yet seen answered
    /// when it issued this one. `None` (omitted in JSON) for the head of a chain
    /// and for every single-dispatch operation. Only the multi-dispatch checkers
    /// ([`crate::mdl`], [`crate::mdl_log`]) read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pred: Option<u64>,
    /// `put`, `get`, `delete` or `cas`.
    pub op: String,
    /// The key.
    pub key: String,
    /// put and cas: the value written; get: the value read (null when absent or unknown).
    pub value: Option<String>,
    /// cas only: the value expected (null: the key had to be absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// cas only: whether it swapped (null when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swapped: Option<bool>,
    /// When the operation was invoked, in nanoseconds since the run started.
    pub invoke_ns: u64,
    /// When its answer arrived; null without an answer.
    pub return_ns: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Record {
    /// The record of `cmd`, invoked at `invoke_ns`, ended as `outcome` (with the
    /// replica's result when it succeeded).
    pub fn of(
        cmd: &Command,
        invoke_ns: u64,
        end: Option<(u64, &CmdOutcome)>,
        outcome: Outcome,
    ) -> Record {
        let (value, swapped) = match (cmd.op, end) {
            (Op::Get, Some((_, o))) => (o.value.as_deref().map(text), None),
            (Op::Get, None) => (None, None),
            (Op::Cas, Some((_, o))) if outcome == Outcome::Ok => {
                (Some(text(&cmd.value)), Some(o.flag))
            }
            (Op::Cas, _) => (Some(text(&cmd.value)), None),
            (Op::Put, _) => (Some(text(&cmd.value)), None),
            _ => (None, None),
        };
        Record {
            client: cmd.client,
            seq: cmd.seq,
            pred: None,
            op: cmd.op.name().to_string(),
            key: text(&cmd.key),
            value,
            expected: (cmd.op == Op::Cas)
                .then(|| cmd.expected.as_deref().map(text))
                .flatten(),
            swapped,
            invoke_ns,
            return_ns: end.map(|(t, _)| t),
            outcome,
        }
    }

    /// The same record with its chain predecessor set to `pred` (a `seq` of the
    /// same client, or `None` for a chain head).
    pub fn with_pred(self, pred: Option<u64>) -> Record {
        Record { pred, ..self }
    }
}

/// Writes records as JSON lines.
pub fn write<W: Write>(mut w: W, records: &[Record]) -> std::io::Result<()> {
    for r in records {
        serde_json::to_writer(&mut w, r)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// Reads a JSON-lines history, naming the line of the first bad record.
pub fn read<R: BufRead>(r: R) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    for (i, line) in r.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(&line).map_err(|e| {
            anyhow::anyhow!(
                "history line {}: {e} (see docs/bench.md for the schema)",
                i + 1
            )
        })?;
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn records_round_trip_through_the_documented_schema() {
        let put = Command::put(1, 2, "k", "v");
        let get = Command::get(1, 3, "k");
        let cas = Command::cas(1, 4, "k", Some(Bytes::from("v")), "w");
        let got = CmdOutcome {
            value: Some(Bytes::from("v")),
            flag: false,
        };
        let swapped = CmdOutcome {
            value: Some(Bytes::from("v")),
            flag: true,
        };
        let recs = vec![
            Record::of(&put, 10, Some((20, &CmdOutcome::default())), Outcome::Ok),
            Record::of(&get, 30, Some((40, &got)), Outcome::Ok),
            Record::of(&cas, 50, Some((60, &swapped)), Outcome::Ok),
            Record::of(&put, 70, None, Outcome::Unknown),
            Record::of(&get, 80, None, Outcome::Fail),
            Record::of(&put, 90, None, Outcome::Unknown).with_pred(Some(3)),
        ];
        let mut buf = Vec::new();
        write(&mut buf, &recs).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        // The documented field names and values.
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["op"], "put");
        assert_eq!(first["value"], "v");
        assert_eq!(first["outcome"], "ok");
        assert_eq!(first["invoke_ns"], 10);
        assert_eq!(first["return_ns"], 20);
        let cas_line: serde_json::Value =
            serde_json::from_str(text.lines().nth(2).unwrap()).unwrap();
        assert_eq!(cas_line["expected"], "v");
        assert_eq!(cas_line["swapped"], true);
        let unknown: serde_json::Value =
            serde_json::from_str(text.lines().nth(3).unwrap()).unwrap();
        assert!(unknown["return_ns"].is_null());
        assert_eq!(unknown["outcome"], "unknown");
        // `pred` is written only when set.
        assert!(first.get("pred").is_none());
        let chained: serde_json::Value =
            serde_json::from_str(text.lines().nth(5).unwrap()).unwrap();
        assert_eq!(chained["pred"], 3);
        assert_eq!(read(&buf[..]).unwrap(), recs);
        // A history written before `pred` existed still reads, as chain heads.
        let old = br#"{"client":1,"seq":2,"op":"put","key":"k","value":"v","invoke_ns":10,"return_ns":20,"outcome":"ok"}"#;
        let parsed = read(&old[..]).unwrap();
        assert_eq!(parsed, vec![recs[0].clone()]);
        assert_eq!(parsed[0].pred, None);
        assert!(read(&b"{\"client\": 1}\n"[..])
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }
}
