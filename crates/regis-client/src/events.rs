//! `B/events`, read as it arrives: Server-Sent Events of which only
//! `event: checkpoint` matters (its data names the log and its new size).
//! The events are hints to fetch and verify the checkpoints, never trusted
//! themselves.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use regis_model::Log;

use crate::client::Client;
use crate::error::Error;

/// The longest line accepted (a checkpoint event's data line holds a signed
/// checkpoint: a few hundred bytes, more with cosignatures).
const MAX_LINE: u64 = 64 * 1024;

/// A log published a checkpoint of `size` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointEvent {
    /// Which log.
    pub log: Log,
    /// Its new size.
    pub size: u64,
}

/// What one read of the stream gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A checkpoint event.
    Checkpoint(CheckpointEvent),
    /// Any other line (a keep-alive comment, another event, part of one).
    Other,
}

/// Why the stream ended or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The server closed it.
    #[error("the event stream ended")]
    Ended,
    /// Reading failed, or no line came in time.
    #[error("reading the event stream: {0}")]
    Read(#[from] std::io::Error),
    /// A line too long to be an event's.
    #[error("an event stream line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// Server-Sent Events from `R` ([`Client::events`]).
#[derive(Debug)]
pub struct Events<R> {
    input: R,
    event: String,
    data: String,
}

impl<R: BufRead> Events<R> {
    pub(crate) fn new(input: R) -> Self {
        Events {
            input,
            event: String::new(),
            data: String::new(),
        }
    }

    /// Reads one line and says what it completed.
    pub fn next_line(&mut self) -> Result<Received, StreamError> {
        let mut raw = Vec::new();
        let read = (&mut self.input)
            .take(MAX_LINE)
            .read_until(b'\n', &mut raw)?;
        if read == 0 {
            return Err(StreamError::Ended);
        }
        if raw.last() != Some(&b'\n') {
            return if read as u64 >= MAX_LINE {
                Err(StreamError::LineTooLong)
            } else {
                Err(StreamError::Ended)
            };
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if event == "checkpoint"
                && let Some(parsed) = parse_checkpoint_event(&data)
            {
                return Ok(Received::Checkpoint(parsed));
            }
            return Ok(Received::Other);
        }
        if let Some(value) = line.strip_prefix("event:") {
            self.event = value.trim_start().to_owned();
        } else if let Some(value) = line.strip_prefix("data:") {
            if !self.data.is_empty() {
                self.data.push('\n');
            }
            self.data.push_str(value.trim_start());
        }
        Ok(Received::Other)
    }
}

impl Client {
    /// Subscribes to the register's events (`B/events`). The server sends
    /// something at least every `idle` (a keep-alive, if nothing else), or
    /// the stream fails.
    pub fn events(&self, idle: Duration) -> Result<Events<impl BufRead + use<>>, Error> {
        let stream = self.http().stream("events", idle)?;
        Ok(Events::new(BufReader::new(stream)))
    }
}

/// `{"log":"user"|"system","size":N,…}`; anything else is ignored.
fn parse_checkpoint_event(data: &str) -> Option<CheckpointEvent> {
    let json: serde_json::Value = serde_json::from_str(data).ok()?;
    let log = match json.get("log")?.as_str()? {
        "user" => Log::User,
        "system" => Log::System,
        _ => return None,
    };
    Some(CheckpointEvent {
        log,
        size: json.get("size")?.as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_checkpoint_events_and_skips_the_rest() {
        let stream = ": keep-alive\n\nevent: checkpoint\ndata: {\"log\":\"user\",\"size\":5,\"root-hash\":\"x\"}\n\nevent: other\ndata: {}\n\nevent: checkpoint\r\ndata: {\"log\":\"system\",\"size\":2}\r\n\r\n";
        let mut events = Events::new(stream.as_bytes());
        let mut got = Vec::new();
        loop {
            match events.next_line() {
                Ok(Received::Checkpoint(event)) => got.push(event),
                Ok(Received::Other) => {}
                Err(StreamError::Ended) => break,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(
            got,
            [
                CheckpointEvent {
                    log: Log::User,
                    size: 5
                },
                CheckpointEvent {
                    log: Log::System,
                    size: 2
                }
            ]
        );
    }

    #[test]
    fn a_line_without_end_is_refused() {
        let long = "x".repeat(MAX_LINE as usize + 10);
        let mut events = Events::new(long.as_bytes());
        assert!(matches!(events.next_line(), Err(StreamError::LineTooLong)));
    }
}
