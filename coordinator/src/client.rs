//! The command-line syntax of a transaction (`1:add alice -5 min 0`) and of results: pure
//! parsing and formatting shared by `coordinator submit` and the demo (a host name in
//! `--participant ID=HOST:PORT` is resolved, once, at start-up).

use std::fmt;
use std::net::SocketAddr;

use wire::{NodeId, Op, Read, TxnResult, Value};

/// The op syntax, for `--help` and error messages.
pub const OP_SYNTAX: &str = "NODE:get KEY | NODE:put KEY VALUE | NODE:del KEY | \
                             NODE:add KEY DELTA [min M] [max M]";

/// An operation argument that does not parse; `index` counts from 1.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("op {index}: '{arg}': {reason}")]
pub struct OpError {
    pub index: usize,
    pub arg: String,
    pub reason: String,
}

/// Parses one op argument per element into per-participant op lists, keeping the order
/// in which participants first appear and the order of ops on each participant.
pub fn parse_ops<S: AsRef<str>>(args: &[S]) -> Result<Vec<(NodeId, Vec<Op>)>, OpError> {
    if args.is_empty() {
        return Err(OpError {
            index: 0,
            arg: String::new(),
            reason: format!("no operations given, expected {OP_SYNTAX}"),
        });
    }
    let mut parts: Vec<(NodeId, Vec<Op>)> = Vec::new();
    for (index, arg) in args.iter().enumerate() {
        let arg = arg.as_ref();
        let (node, op) = parse_op(arg).map_err(|reason| OpError {
            index: index + 1,
            arg: arg.to_string(),
            reason,
        })?;
        match parts.iter_mut().find(|(n, _)| *n == node) {
            Some((_, ops)) => ops.push(op),
            None => parts.push((node, vec![op])),
        }
    }
    Ok(parts)
}

/// Parses `NODE:OP ARGS...`; `Err` is the reason, without the argument.
pub fn parse_op(arg: &str) -> Result<(NodeId, Op), String> {
    let Some((node, rest)) = arg.split_once(':') else {
        return Err("expected NODE:OPERATION, e.g. 1:get alice".to_string());
    };
    let node = node
        .trim()
        .parse::<u32>()
        .map(NodeId)
        .map_err(|_| format!("bad node id '{}', expected a number", node.trim()))?;
    let (name, rest) = next_word(rest);
    let (key, rest) = next_word(rest);
    let needs_key = |usage: &str| -> Result<String, String> {
        if key.is_empty() {
            Err(format!("missing KEY, expected {usage}"))
        } else {
            Ok(key.to_string())
        }
    };
    let op = match name {
        "get" => {
            let key = needs_key("get KEY")?;
            no_more(rest)?;
            Op::Get { key }
        }
        "del" => {
            let key = needs_key("del KEY")?;
            no_more(rest)?;
            Op::Delete { key }
        }
        "put" => {
            let key = needs_key("put KEY VALUE")?;
            let value = rest.trim();
            if value.is_empty() {
                return Err("missing VALUE, expected put KEY VALUE".to_string());
            }
            Op::Put {
                key,
                value: parse_value(value)?,
            }
        }
        "add" => {
            let key = needs_key("add KEY DELTA [min M] [max M]")?;
            parse_add(key, rest)?
        }
        "" => return Err(format!("missing operation, expected {OP_SYNTAX}")),
        other => {
            return Err(format!(
                "unknown operation '{other}', expected get|put|del|add"
            ));
        }
    };
    Ok((node, op))
}

fn parse_add(key: String, rest: &str) -> Result<Op, String> {
    let mut words = rest.split_whitespace();
    let delta = words
        .next()
        .ok_or("missing DELTA, expected add KEY DELTA [min M] [max M]")?;
    let delta = parse_int("DELTA", delta)?;
    let (mut min, mut max) = (None, None);
    while let Some(word) = words.next() {
        let slot = match word {
            "min" => &mut min,
            "max" => &mut max,
            other => return Err(format!("unexpected '{other}', expected min M or max M")),
        };
        if slot.is_some() {
            return Err(format!("{word} given twice"));
        }
        let bound = words.next().ok_or(format!("missing value after {word}"))?;
        *slot = Some(parse_int(word, bound)?);
    }
    Ok(Op::Add {
        key,
        delta,
        min,
        max,
    })
}

fn parse_int(what: &str, text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .map_err(|_| format!("{what} '{text}' is not an integer"))
}

/// The rule for a `put` VALUE, for `--help` and the README.
pub const VALUE_RULE: &str = "VALUE in double quotes (\"007\") is text, exactly what is \
                              between them; unquoted, an integer written plainly (42, -5) is \
                              an integer and anything else that is not a number is text";

/// A `put` VALUE: `"..."` is the text between the quotes (nothing is escaped, so any
/// text, including one that looks like a number, can be stored); unquoted, an integer
/// in plain form (`0`, `42`, `-5`) is an integer and other text stays text. What would be
/// silently retyped (`007` read back as `7`, `+5`, a number outside i64 stored as text
/// that a later `add` refuses) is an error that says to quote it.
pub fn parse_value(text: &str) -> Result<Value, String> {
    if let Some(quoted) = text.strip_prefix('"') {
        return match quoted.strip_suffix('"') {
            Some(inner) => Ok(Value::Text(inner.to_string())),
            None => Err(format!("VALUE {text} has no closing quote")),
        };
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Ok(Value::Text(text.to_string()));
    }
    match text.parse::<i64>() {
        Ok(int) if int.to_string() == text => Ok(Value::Int(int)),
        Ok(int) => Err(format!(
            "VALUE {text} would be stored as the integer {int}: write {int}, or \"{text}\" for text"
        )),
        Err(_) => Err(format!(
            "VALUE {text} is outside the integer range: write \"{text}\" to store it as text"
        )),
    }
}

fn next_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    (&text[..end], &text[end..])
}

fn no_more(rest: &str) -> Result<(), String> {
    match rest.trim() {
        "" => Ok(()),
        extra => Err(format!("unexpected '{extra}' after the key")),
    }
}

/// Parses `ID=ADDR`, e.g. `1=127.0.0.1:7001`.
pub fn parse_participant(text: &str) -> Result<(NodeId, SocketAddr), String> {
    let usage = "expected ID=ADDR, e.g. 1=127.0.0.1:7001";
    let (id, addr) = text.split_once('=').ok_or(format!("'{text}': {usage}"))?;
    let id = id
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("'{text}': node id '{id}' is not a number; {usage}"))?;
    let addr = wire::addr::resolve(addr).map_err(|reason| format!("'{text}': {reason}"))?;
    Ok((NodeId(id), addr))
}

/// A transaction's outcome as `coordinator submit` prints it.
#[derive(Debug)]
pub struct ResultText<'a> {
    pub result: &'a TxnResult,
}

impl fmt::Display for ResultText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.result {
            TxnResult::Committed { reads } => {
                writeln!(f, "committed")?;
                for (node, reads) in reads {
                    for Read { key, value } in reads {
                        match value {
                            Some(value) => writeln!(f, "{node}:{key} = {value}")?,
                            None => writeln!(f, "{node}:{key} = (none)")?,
                        }
                    }
                }
                Ok(())
            }
            TxnResult::Aborted { reason } => writeln!(f, "aborted: {reason}"),
            TxnResult::Rejected { reason } => writeln!(f, "rejected: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(args: &[&str]) -> String {
        parse_ops(args).expect_err("must fail").to_string()
    }

    #[test]
    fn parses_a_bank_transfer() {
        assert_eq!(
            parse_ops(&["1:add alice -5 min 0", "2:add bob 5"]),
            Ok(vec![
                (
                    NodeId(1),
                    vec![Op::Add {
                        key: "alice".to_string(),
                        delta: -5,
                        min: Some(0),
                        max: None
                    }]
                ),
                (
                    NodeId(2),
                    vec![Op::Add {
                        key: "bob".to_string(),
                        delta: 5,
                        min: None,
                        max: None
                    }]
                ),
            ])
        );
    }

    #[test]
    fn groups_ops_by_participant_in_order() {
        let parts = parse_ops(&["2:get b", "1:put a 7", "2:del c", "1:put note hello  world"])
            .expect("parses");
        assert_eq!(
            parts,
            vec![
                (
                    NodeId(2),
                    vec![
                        Op::Get {
                            key: "b".to_string()
                        },
                        Op::Delete {
                            key: "c".to_string()
                        }
                    ]
                ),
                (
                    NodeId(1),
                    vec![
                        Op::Put {
                            key: "a".to_string(),
                            value: Value::Int(7)
                        },
                        Op::Put {
                            key: "note".to_string(),
                            value: Value::Text("hello  world".to_string())
                        }
                    ]
                ),
            ]
        );
    }

    #[test]
    fn parses_add_with_both_bounds_in_any_order() {
        assert_eq!(
            parse_op("3: add x 10 max 100 min -1"),
            Ok((
                NodeId(3),
                Op::Add {
                    key: "x".to_string(),
                    delta: 10,
                    min: Some(-1),
                    max: Some(100)
                }
            ))
        );
    }

    #[test]
    fn unknown_operation_names_the_op_and_the_choices() {
        assert_eq!(
            err(&["1:get a", "1:ad k 1"]),
            "op 2: '1:ad k 1': unknown operation 'ad', expected get|put|del|add"
        );
    }

    #[test]
    fn syntax_errors_are_clear() {
        assert_eq!(
            err(&["get a"]),
            "op 1: 'get a': expected NODE:OPERATION, e.g. 1:get alice"
        );
        assert_eq!(
            err(&["x:get a"]),
            "op 1: 'x:get a': bad node id 'x', expected a number"
        );
        assert_eq!(
            err(&["1:get"]),
            "op 1: '1:get': missing KEY, expected get KEY"
        );
        assert_eq!(
            err(&["1:get a b"]),
            "op 1: '1:get a b': unexpected 'b' after the key"
        );
        assert_eq!(
            err(&["1:put a"]),
            "op 1: '1:put a': missing VALUE, expected put KEY VALUE"
        );
        assert_eq!(
            err(&["1:add a five"]),
            "op 1: '1:add a five': DELTA 'five' is not an integer"
        );
        assert_eq!(
            err(&["1:add a 5 min"]),
            "op 1: '1:add a 5 min': missing value after min"
        );
        assert_eq!(
            err(&["1:add a 5 min 0 min 1"]),
            "op 1: '1:add a 5 min 0 min 1': min given twice"
        );
        assert_eq!(
            err(&["1:add a 5 floor 0"]),
            "op 1: '1:add a 5 floor 0': unexpected 'floor', expected min M or max M"
        );
        assert_eq!(
            err(&["1:"]),
            format!("op 1: '1:': missing operation, expected {OP_SYNTAX}")
        );
        assert!(err(&[]).contains("no operations given"));
    }

    #[test]
    fn quoted_values_are_text_and_plain_integers_are_integers() {
        let put = |arg: &str| match parse_op(arg) {
            Ok((_, Op::Put { value, .. })) => Ok(value),
            Ok(other) => panic!("not a put: {other:?}"),
            Err(reason) => Err(reason),
        };
        assert_eq!(put("1:put zip \"007\""), Ok(Value::Text("007".into())));
        assert_eq!(put("1:put n \"42\""), Ok(Value::Text("42".into())));
        assert_eq!(put("1:put s \"\""), Ok(Value::Text(String::new())));
        assert_eq!(
            put("1:put s \"two words\""),
            Ok(Value::Text("two words".into()))
        );
        assert_eq!(
            put("1:put s two words"),
            Ok(Value::Text("two words".into()))
        );
        assert_eq!(put("1:put n 42"), Ok(Value::Int(42)));
        assert_eq!(put("1:put n -5"), Ok(Value::Int(-5)));
        assert_eq!(put("1:put n 0"), Ok(Value::Int(0)));
        assert_eq!(put("1:put s 4x"), Ok(Value::Text("4x".into())));
        assert_eq!(
            put("1:put zip 007"),
            Err("VALUE 007 would be stored as the integer 7: write 7, or \"007\" for text".into())
        );
        assert_eq!(
            put("1:put n +5"),
            Err("VALUE +5 would be stored as the integer 5: write 5, or \"+5\" for text".into())
        );
        assert_eq!(
            put("1:put n 12345678901234567890"),
            Err(
                "VALUE 12345678901234567890 is outside the integer range: write \
                 \"12345678901234567890\" to store it as text"
                    .into()
            )
        );
        assert_eq!(
            put("1:put s \"open"),
            Err("VALUE \"open has no closing quote".into())
        );
    }

    #[test]
    fn parses_participant_addresses() {
        assert_eq!(
            parse_participant("2=127.0.0.1:7002"),
            Ok((NodeId(2), "127.0.0.1:7002".parse().expect("addr")))
        );
        assert_eq!(
            parse_participant("2:127.0.0.1:7002"),
            Err("'2:127.0.0.1:7002': expected ID=ADDR, e.g. 1=127.0.0.1:7001".to_string())
        );
        assert_eq!(
            parse_participant("two=127.0.0.1:7002"),
            Err("'two=127.0.0.1:7002': node id 'two' is not a number; expected ID=ADDR, e.g. 1=127.0.0.1:7001".to_string())
        );
        assert_eq!(
            parse_participant("2=localhost"),
            Err("'2=localhost': 'localhost' is not an address: expected HOST:PORT, e.g. 127.0.0.1:7001 or localhost:7001".to_string())
        );
        let (id, addr) = parse_participant("2=localhost:7002").expect("a host name resolves");
        assert!(id == NodeId(2) && addr.ip().is_loopback() && addr.port() == 7002);
    }

    #[test]
    fn formats_results() {
        let committed = TxnResult::Committed {
            reads: vec![(
                NodeId(1),
                vec![
                    Read {
                        key: "a".to_string(),
                        value: Some(Value::Int(5)),
                    },
                    Read {
                        key: "b".to_string(),
                        value: None,
                    },
                ],
            )],
        };
        assert_eq!(
            ResultText { result: &committed }.to_string(),
            "committed\n1:a = 5\n1:b = (none)\n"
        );
        let aborted = TxnResult::Aborted {
            reason: "participant 2 is down".to_string(),
        };
        assert_eq!(
            ResultText { result: &aborted }.to_string(),
            "aborted: participant 2 is down\n"
        );
    }
}
