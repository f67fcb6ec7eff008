//! `ctr events` read in the background, to check which events a user sees and in what order.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One line of `ctr events`:
/// `2026-11-22 04:00:09.376 +0000 UTC <namespace> <topic> <json payload>`.
#[derive(Debug, Clone)]
pub struct Event {
    pub namespace: String,
    pub topic: String,
    pub payload: serde_json::Value,
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        let fields: Vec<&str> = line.splitn(7, ' ').collect();
        if fields.len() < 6 {
            return None;
        }
        let payload = fields
            .get(6)
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(serde_json::Value::Null);
        Some(Event {
            namespace: fields[4].to_string(),
            topic: fields[5].to_string(),
            payload,
        })
    }

    /// A string field of the payload, "" if absent.
    pub fn field(&self, name: &str) -> &str {
        self.payload
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    /// Whether the event is about this container or its init, and not about one of its execs.
    /// An exec's exit carries the container's id too (with the exec's in `id`), and it may
    /// reach a subscription made after `ctr task exec` returned: events are sent apart from
    /// the reply.
    pub fn concerns_the_container(&self, container_id: &str) -> bool {
        let process = if self.field("exec_id").is_empty() {
            self.field("id")
        } else {
            self.field("exec_id")
        };
        if self.field("container_id").is_empty() {
            process == container_id
        } else {
            self.field("container_id") == container_id
                && (process.is_empty() || process == container_id)
        }
    }

    /// A numeric field of the payload (protobuf's JSON omits zeros, so absent means 0).
    pub fn number(&self, name: &str) -> u64 {
        self.payload.get(name).and_then(|v| v.as_u64()).unwrap_or(0)
    }
}

/// A running `ctr events` subscription and everything it printed so far.
pub struct Events {
    child: Child,
    seen: Arc<Mutex<Vec<Event>>>,
    namespace: String,
}

impl Events {
    /// Spawns `ctr events` (`ctr` is the command prefix with `--address`), and returns once
    /// the subscription is live, proven by an event we provoke ourselves.
    pub(crate) fn subscribe(mut ctr: Command, namespace: &str, probe: impl Fn(u32)) -> Events {
        ctr.arg("events")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = ctr.spawn().expect("start ctr events");
        let stdout = child.stdout.take().expect("stdout is piped");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(ev) = Event::parse(&line) {
                    sink.lock().unwrap().push(ev);
                }
            }
        });
        let events = Events {
            child,
            seen,
            namespace: namespace.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in 0.. {
            probe(n);
            let live = Instant::now() + Duration::from_millis(500);
            while Instant::now() < live {
                if events
                    .all()
                    .iter()
                    .any(|e| e.topic.starts_with("/namespaces/"))
                {
                    return events;
                }
                thread::sleep(Duration::from_millis(20));
            }
            assert!(Instant::now() < deadline, "ctr events never got live");
        }
        unreachable!()
    }

    /// Every event seen so far, in any namespace.
    pub fn all(&self) -> Vec<Event> {
        self.seen.lock().unwrap().clone()
    }

    /// The events seen so far in this test's namespace, in arrival order.
    pub fn list(&self) -> Vec<Event> {
        self.all()
            .into_iter()
            .filter(|e| e.namespace == self.namespace)
            .collect()
    }

    /// Topics of this namespace's events about `container_id` or its init (not its execs).
    pub fn topics_for(&self, container_id: &str) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|e| e.concerns_the_container(container_id))
            .map(|e| e.topic)
            .collect()
    }

    /// Waits until an event of this namespace matches, or panics listing what was seen.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.list().into_iter().find(|e| pred(e)) {
                return e;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no event {what} within {timeout:?}; seen:\n{}",
                    self.list()
                        .iter()
                        .map(|e| format!("{} {}", e.topic, e.payload))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for an event with this topic whose payload concerns `container_id`.
    pub fn wait_topic(&self, topic: &str, container_id: &str, timeout: Duration) -> Event {
        self.wait_for(&format!("{topic} for {container_id}"), timeout, |e| {
            e.topic == topic && e.concerns_the_container(container_id)
        })
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::Event;

    fn event(payload: &str) -> Event {
        Event::parse(&format!(
            "2026-11-22 04:00:09.376 +0000 UTC ns /tasks/exit {payload}"
        ))
        .expect("a line of ctr events")
    }

    #[test]
    fn an_exec_is_not_its_container() {
        let init = event(r#"{"container_id":"c","id":"c","pid":7,"exit_status":9}"#);
        let exec = event(r#"{"container_id":"c","id":"after","pid":8}"#);
        let added = event(r#"{"container_id":"c","exec_id":"after"}"#);
        let start = event(r#"{"container_id":"c","pid":7}"#);
        let container = event(r#"{"id":"c","image":"x"}"#);
        assert!(init.concerns_the_container("c"));
        assert!(start.concerns_the_container("c"));
        assert!(container.concerns_the_container("c"));
        assert!(!exec.concerns_the_container("c"));
        assert!(!added.concerns_the_container("c"));
        assert!(!init.concerns_the_container("d"));
        assert!(!container.concerns_the_container("d"));
    }
}
