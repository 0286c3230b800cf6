//! The status page and a machine's page: server-rendered HTML, no JavaScript,
//! every value from a machine or the registry escaped. Pure functions from
//! data to text, so they are tested without a server.

use std::fmt::Write as _;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::events::duration::{ago, bytes, short};
use crate::events::writer::WriteFailure;
use crate::events::{Boot, BootDetail, Event, Kind, MachineSeen, Outcome, Timestamp};

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// About the server, for the page header.
pub struct PageInfo {
    pub public_url: String,
    pub started: Timestamp,
    pub events: u64,
    pub unrecorded: Unrecorded,
}

/// What the boot history could not record since the server started.
#[derive(Debug, Default)]
pub struct Unrecorded {
    /// Events dropped because the writer was behind.
    pub dropped: u64,
    /// Events lost in failed writes.
    pub lost: u64,
    pub last_failure: Option<WriteFailure>,
    /// Why the history could not be read for this page.
    pub read_error: Option<String>,
}

fn unrecorded_notice(out: &mut String, u: &Unrecorded, now: Timestamp) {
    let mut lines = Vec::new();
    if u.dropped > 0 {
        lines.push(format!(
            "{} events were not recorded since the server started: the history writer was behind.",
            u.dropped
        ));
    }
    if let Some(f) = &u.last_failure {
        let state = match f.recovered {
            Some(at) => format!("writing works again since {}.", esc(&ago(now.since(at)))),
            None => "writing still fails; machines are served all the same. \
                     Check the free space of the data directory."
                .into(),
        };
        lines.push(format!(
            "{} events were lost in failed writes to the history; the last failure, {}: \
             <span class=\"mono\">{}</span>; {state}",
            u.lost,
            esc(&ago(now.since(f.at))),
            esc(&f.error)
        ));
    }
    if let Some(err) = &u.read_error {
        lines.push(format!(
            "The history cannot be read now: <span class=\"mono\">{}</span>",
            esc(err)
        ));
    }
    if lines.is_empty() {
        return;
    }
    out.push_str("<div class=\"notice\">");
    for line in lines {
        let _ = write!(out, "<p>{line}</p>");
    }
    out.push_str("</div>");
}

/// An enrolled machine and what the history knows of it.
pub struct MachineRow<'a> {
    pub name: &'a str,
    pub fingerprint: &'a str,
    pub profile: Option<&'a str>,
    pub revoked: bool,
    pub seen: Option<&'a MachineSeen>,
}

/// How a boot looks: its badge class and text.
fn boot_badge(boot: &Boot) -> (&'static str, String) {
    match boot.outcome {
        Outcome::FilesServed => ("ok", boot.outcome_text()),
        Outcome::Failed => ("bad", boot.outcome_text()),
        Outcome::ScriptOnly if !boot.settled => ("none", "booting (script served)".into()),
        Outcome::ScriptOnly => ("warn", boot.outcome_text()),
    }
}

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", esc(text))
}

fn when(now: Timestamp, t: Timestamp) -> String {
    format!(
        "<span title=\"{} UTC\">{}</span>",
        esc(&t.display_secs()),
        esc(&ago(now.since(t)))
    )
}

fn host_of(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => peer,
    }
}

fn machine_link(name: &str) -> String {
    format!(
        "<a href=\"/machines/{}\">{}</a>",
        utf8_percent_encode(name, NON_ALPHANUMERIC),
        esc(name)
    )
}

fn head(out: &mut String, title: &str, info: &PageInfo, now: Timestamp) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\
         <header><h1><a href=\"/\">bootgate</a></h1>\
         <span class=\"meta\">{url} · up {up} · {events} events recorded · \
         <a href=\"/metrics\">metrics</a></span></header><main>",
        title = esc(title),
        url = esc(&info.public_url),
        up = esc(&short(now.since(info.started))),
        events = info.events,
    );
    unrecorded_notice(out, &info.unrecorded, now);
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;color:#1d2733;background:#f5f7fa}\
header{background:#1d2733;color:#fff;padding:12px 28px;display:flex;align-items:baseline;gap:18px}\
header h1{font-size:19px;margin:0}header h1 a{color:#fff}\
header .meta{color:#b8c4d2;font-size:13px}header .meta a{color:#9cc3ff}\
main{padding:18px 28px 40px;max-width:1240px}\
h2{font-size:15px;margin:26px 0 10px}\
.cards{display:flex;gap:12px;flex-wrap:wrap}\
.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:8px 16px;min-width:110px}\
.card .n{font-size:22px;font-weight:600}.card .l{color:#5b6b7c;font-size:12px;text-transform:uppercase;letter-spacing:.04em}\
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde3ea}\
th,td{text-align:left;padding:6px 12px;border-bottom:1px solid #edf0f4;white-space:nowrap}\
th{background:#f0f3f7;font-size:12px;color:#5b6b7c;text-transform:uppercase;letter-spacing:.04em}\
td.num,th.num{text-align:right}\
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,'DejaVu Sans Mono',monospace;font-size:13px}\
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600}\
.ok{background:#dcf5e3;color:#17663a}.warn{background:#fff1cc;color:#7a5300}\
.bad{background:#fde2e1;color:#a1221b}.none{background:#eceff3;color:#5b6b7c}\
a{color:#1f5fbf;text-decoration:none}a:hover{text-decoration:underline}\
.muted{color:#7a8896}.empty{padding:14px;color:#7a8896;background:#fff;border:1px solid #dde3ea}\
dl{display:grid;grid-template-columns:max-content auto;gap:4px 18px;background:#fff;border:1px solid #dde3ea;padding:12px 16px;margin:0}\
dt{color:#5b6b7c}dd{margin:0}\
.notice{background:#fff1cc;border:1px solid #e8c96a;color:#5c3f00;border-radius:6px;padding:2px 16px;margin-top:16px}\
.boot{margin-top:18px}.boot h3{font-size:14px;margin:0 0 6px;font-weight:600}";

fn foot(out: &mut String, now: Timestamp) {
    let _ = writeln!(
        out,
        "<p class=\"muted\">Rendered {} UTC. Times are UTC; hover a relative time for the exact one.</p>\
         </main></body></html>",
        esc(&now.display_secs())
    );
}

/// `/`: every enrolled machine with its last sighting and boot, then the
/// latest refusals and handshake failures.
pub fn status_page(
    now: Timestamp,
    info: &PageInfo,
    rows: &[MachineRow],
    failures: &[Event],
) -> String {
    let mut out = String::new();
    head(&mut out, "bootgate status", info, now);

    let last_boots: Vec<Option<&Boot>> = rows
        .iter()
        .map(|r| r.seen.and_then(|s| s.last_boot.as_ref()))
        .collect();
    let count = |f: &dyn Fn(&Boot) -> bool| last_boots.iter().flatten().filter(|b| f(b)).count();
    let cards = [
        ("machines", rows.len(), ""),
        (
            "booted",
            count(&|b| b.outcome == Outcome::FilesServed),
            "ok",
        ),
        (
            "script only",
            count(&|b| b.outcome == Outcome::ScriptOnly),
            "warn",
        ),
        ("failed", count(&|b| b.outcome == Outcome::Failed), "bad"),
        (
            "never booted",
            last_boots.iter().filter(|b| b.is_none()).count(),
            "none",
        ),
    ];
    out.push_str("<h2>Last boot of each machine</h2><div class=\"cards\">");
    for (label, n, class) in cards {
        let _ = write!(
            out,
            "<div class=\"card\"><div class=\"n\">{n}</div><div class=\"l\">{}</div></div>",
            if class.is_empty() {
                esc(label)
            } else {
                badge(class, label)
            }
        );
    }
    out.push_str("</div><h2>Machines</h2>");

    if rows.is_empty() {
        out.push_str(
            "<div class=\"empty\">No machine is enrolled: <span class=\"mono\">bootgate machine add NAME</span>.</div>",
        );
    } else {
        out.push_str(
            "<table><tr><th>Machine</th><th>Profile</th><th>State</th><th>Last seen</th>\
             <th>From</th><th>Last boot</th><th>Outcome</th><th class=\"num\">Requests</th>\
             <th class=\"num\">Sent</th><th>Platform</th></tr>",
        );
        for (row, boot) in rows.iter().zip(&last_boots) {
            let state = if row.revoked {
                badge("bad", "revoked")
            } else {
                badge("ok", "active")
            };
            let (seen, from) = match row.seen {
                Some(s) => (
                    when(now, s.last_seen),
                    format!("<span class=\"mono\">{}</span>", esc(host_of(&s.last_peer))),
                ),
                None => ("<span class=\"muted\">never</span>".into(), String::new()),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{state}</td><td>{seen}</td><td>{from}</td>",
                machine_link(row.name),
                esc(row.profile.unwrap_or("—")),
            );
            match boot {
                Some(b) => {
                    let (class, text) = boot_badge(b);
                    let platform = [b.platform.as_deref(), b.buildarch.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" / ");
                    let _ = write!(
                        out,
                        "<td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                        when(now, b.started),
                        badge(class, &text),
                        b.requests,
                        esc(&bytes(b.bytes)),
                        esc(&platform),
                    );
                }
                None => out.push_str(
                    "<td><span class=\"muted\">—</span></td><td>\
                     <span class=\"badge none\">no boot recorded</span></td><td></td><td></td><td></td></tr>",
                ),
            }
        }
        out.push_str("</table>");
    }

    out.push_str("<h2>Recent refusals and failed handshakes</h2>");
    if failures.is_empty() {
        out.push_str("<div class=\"empty\">None recorded.</div>");
    } else {
        out.push_str(
            "<table><tr><th>When</th><th>From</th><th>Who</th><th>What</th><th>Reason</th></tr>",
        );
        for e in failures {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
                when(now, e.time),
                esc(host_of(&e.peer)),
                who(e),
                esc(&what(e)),
                badge("bad", e.failure_reason().as_deref().unwrap_or("?")),
            );
        }
        out.push_str("</table>");
    }
    foot(&mut out, now);
    out
}

/// The identity behind an event, for people.
fn who(e: &Event) -> String {
    if let Some(machine) = &e.machine {
        return machine_link(machine);
    }
    let mut parts = Vec::new();
    if let Some(subject) = &e.subject {
        parts.push(esc(subject));
    }
    if let Some(issuer) = &e.issuer {
        parts.push(format!("issued by {}", esc(issuer)));
    }
    if let Some(fp) = &e.fingerprint {
        parts.push(format!(
            "<span class=\"mono\" title=\"{}\">{}…</span>",
            esc(fp),
            esc(&fp[..fp.len().min(12)])
        ));
    }
    if parts.is_empty() {
        "<span class=\"muted\">no certificate</span>".into()
    } else {
        parts.join(" ")
    }
}

fn what(e: &Event) -> String {
    match e.kind {
        Kind::Handshake => "TLS handshake".into(),
        Kind::Request => format!(
            "{} {} → {}",
            e.method.as_deref().unwrap_or("?"),
            e.path.as_deref().unwrap_or("?"),
            e.status.map_or("-".into(), |s| s.to_string())
        ),
    }
}

/// `/machines/NAME`: a machine and its latest boots with their requests.
pub fn machine_page(
    now: Timestamp,
    info: &PageInfo,
    row: &MachineRow,
    boots: &[BootDetail],
) -> String {
    let mut out = String::new();
    head(&mut out, &format!("{} · bootgate", row.name), info, now);
    let _ = write!(out, "<h2>Machine {}</h2><dl>", esc(row.name));
    let mut field = |name: &str, value: String| {
        let _ = write!(out, "<dt>{}</dt><dd>{value}</dd>", esc(name));
    };
    field(
        "fingerprint",
        format!("<span class=\"mono\">{}</span>", esc(row.fingerprint)),
    );
    field("profile", esc(row.profile.unwrap_or("—")));
    field(
        "state",
        if row.revoked {
            badge("bad", "revoked")
        } else {
            badge("ok", "active")
        },
    );
    match row.seen {
        Some(s) => {
            field(
                "last seen",
                format!(
                    "{} ({} UTC)",
                    when(now, s.last_seen),
                    esc(&s.last_seen.display_secs())
                ),
            );
            field(
                "from",
                format!("<span class=\"mono\">{}</span>", esc(&s.last_peer)),
            );
        }
        None => field("last seen", "<span class=\"muted\">never</span>".into()),
    }
    out.push_str("</dl>");

    let _ = write!(out, "<h2>Latest boots ({})</h2>", boots.len());
    if boots.is_empty() {
        out.push_str("<div class=\"empty\">No boot recorded (or all past retention).</div>");
    }
    for detail in boots {
        let b = &detail.boot;
        let (class, text) = boot_badge(b);
        let mut facts = vec![format!(
            "from <span class=\"mono\">{}</span>",
            esc(host_of(&b.peer))
        )];
        for (name, value) in [
            ("mac", &b.mac),
            ("platform", &b.platform),
            ("buildarch", &b.buildarch),
        ] {
            if let Some(v) = value {
                facts.push(format!("{name} <span class=\"mono\">{}</span>", esc(v)));
            }
        }
        let _ = write!(
            out,
            "<div class=\"boot\"><h3>{} UTC · {} · {}</h3>",
            esc(&b.started.display_secs()),
            badge(class, &text),
            facts.join(" · ")
        );
        if let Some(failed) = &b.failed_request {
            let _ = write!(
                out,
                "<p>First failure: <span class=\"mono\">{}</span></p>",
                esc(failed)
            );
        }
        out.push_str(
            "<table><tr><th>At</th><th>Request</th><th class=\"num\">Status</th>\
             <th class=\"num\">Sent</th><th class=\"num\">Time</th><th>Note</th></tr>",
        );
        for e in &detail.requests {
            let offset = e.time.since(b.started);
            let note = match e.failure_reason() {
                Some(reason) => badge("bad", &reason),
                None => String::new(),
            };
            let sent = match e.expected_bytes {
                Some(expected) if expected != e.bytes => {
                    format!("{} of {}", bytes(e.bytes), bytes(expected))
                }
                _ => bytes(e.bytes),
            };
            let _ = write!(
                out,
                "<tr><td class=\"mono\">+{:.3}s</td><td class=\"mono\">{} {}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} ms</td><td>{note}</td></tr>",
                offset.as_secs_f64(),
                esc(e.method.as_deref().unwrap_or("?")),
                esc(e.path.as_deref().unwrap_or("?")),
                e.status.map_or("-".into(), |s| s.to_string()),
                esc(&sent),
                e.duration_ms,
            );
        }
        out.push_str("</table></div>");
    }
    foot(&mut out, now);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> PageInfo {
        PageInfo {
            public_url: "https://boot.example.com".into(),
            started: Timestamp::from_micros(1_700_000_000_000_000),
            events: 3,
            unrecorded: Unrecorded::default(),
        }
    }

    fn boot(outcome: Outcome, settled: bool) -> Boot {
        Boot {
            id: 1,
            machine: "gw1".into(),
            fingerprint: "ab".into(),
            started: Timestamp::from_micros(1_700_000_030_000_000),
            last_activity: Timestamp::from_micros(1_700_000_031_000_000),
            peer: "192.0.2.7:4000".into(),
            mac: Some("52:54:00:12:34:56".into()),
            platform: Some("efi".into()),
            buildarch: Some("x86_64".into()),
            outcome,
            reason: None,
            failed_request: None,
            requests: 3,
            files: 2,
            bytes: 9_000_000,
            settled,
        }
    }

    #[test]
    fn escapes_everything_from_outside() {
        assert_eq!(
            esc("<script>\"x\" & 'y'"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;"
        );
        let now = Timestamp::from_micros(1_700_000_100_000_000);
        let mut hostile = Event::new(Kind::Handshake, now, "[::1]:5000".into());
        hostile.subject = Some("CN=<img src=x onerror=alert(1)>".into());
        hostile.reason = Some("foreign-ca".into());
        let page = status_page(now, &info(), &[], &[hostile]);
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("CN=&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains(">::1<"));
        assert!(!page.contains("<script"));
    }

    #[test]
    fn lists_machines_with_their_last_boot() {
        let now = Timestamp::from_micros(1_700_000_100_000_000);
        let seen = MachineSeen {
            machine: "gw1".into(),
            fingerprint: "ab".into(),
            last_seen: Timestamp::from_micros(1_700_000_031_000_000),
            last_peer: "192.0.2.7:4000".into(),
            last_boot: Some(boot(Outcome::FilesServed, false)),
        };
        let rows = [
            MachineRow {
                name: "gw1",
                fingerprint: "ab",
                profile: Some("gateway"),
                revoked: false,
                seen: Some(&seen),
            },
            MachineRow {
                name: "gw2",
                fingerprint: "cd",
                profile: None,
                revoked: true,
                seen: None,
            },
        ];
        let page = status_page(now, &info(), &rows, &[]);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<a href=\"/machines/gw1\">gw1</a>"));
        assert!(page.contains("<span class=\"badge ok\">files-served</span>"));
        assert!(page.contains("1m ago"));
        assert!(page.contains(">192.0.2.7<"));
        assert!(page.contains("8.6 MiB"));
        assert!(page.contains("no boot recorded"));
        assert!(page.contains("<span class=\"badge bad\">revoked</span>"));
        assert!(!page.contains("<script"));

        let detail = BootDetail {
            boot: boot(Outcome::ScriptOnly, true),
            requests: vec![],
        };
        let page = machine_page(now, &info(), &rows[0], &[detail]);
        assert!(page.contains("<span class=\"badge warn\">script-only</span>"));
        assert!(page.contains("mac <span class=\"mono\">52:54:00:12:34:56</span>"));
    }

    #[test]
    fn says_what_the_history_could_not_record() {
        let now = Timestamp::from_micros(1_700_000_100_000_000);
        assert!(!status_page(now, &info(), &[], &[]).contains("class=\"notice\""));
        let mut failing = info();
        failing.unrecorded = Unrecorded {
            dropped: 7,
            lost: 40,
            last_failure: Some(WriteFailure {
                at: Timestamp::from_micros(1_700_000_040_000_000),
                error: "No space left on device <os error 28>".into(),
                recovered: None,
            }),
            read_error: None,
        };
        let page = status_page(now, &failing, &[], &[]);
        assert!(page.contains("7 events were not recorded"), "{page}");
        assert!(page.contains("40 events were lost"), "{page}");
        assert!(page.contains("No space left on device &lt;os error 28&gt;"));
        assert!(page.contains("writing still fails"));
        failing.unrecorded.last_failure.as_mut().unwrap().recovered =
            Some(Timestamp::from_micros(1_700_000_070_000_000));
        let page = status_page(now, &failing, &[], &[]);
        assert!(page.contains("writing works again since 30s ago"), "{page}");
    }
}
