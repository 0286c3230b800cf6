//! The status page and a machine's page: server-rendered HTML, no JavaScript.
//! Written with `maud`, which escapes every value it places unless told
//! otherwise (only the style sheet is), so nothing from a machine or the
//! registry reaches the page as markup. Pure functions from data to text,
//! so they are tested without a server.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::events::duration::{ago, bytes, short};
use crate::events::text;
use crate::events::writer::WriteFailure;
use crate::events::{Boot, BootDetail, Event, Kind, MachineSeen, Outcome, Timestamp};

/// About the server, for the page header.
pub struct PageInfo {
    pub public_url: String,
    pub started: Timestamp,
    pub events: u64,
    /// The served boot configuration, when git manages it.
    pub config: Option<String>,
    pub unrecorded: Unrecorded,
    /// Machines whose latest handshake (since start) used a pre-2024 suite;
    /// `None` when old clients are not served at all.
    pub legacy_tls_machines: Option<usize>,
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

impl Unrecorded {
    fn is_empty(&self) -> bool {
        self.dropped == 0 && self.last_failure.is_none() && self.read_error.is_none()
    }
}

fn unrecorded_notice(u: &Unrecorded, now: Timestamp) -> Markup {
    if u.is_empty() {
        return html! {};
    }
    html! {
        div class="notice" {
            @if u.dropped > 0 {
                p {
                    (u.dropped) " events were not recorded since the server started: \
                    the history writer was behind."
                }
            }
            @if let Some(f) = &u.last_failure {
                p {
                    (u.lost) " events were lost in failed writes to the history; the last failure, "
                    (ago(now.since(f.at))) ": " span class="mono" { (f.error) } "; "
                    @match f.recovered {
                        Some(at) => { "writing works again since " (ago(now.since(at))) "." }
                        None => {
                            "writing still fails; machines are served all the same. \
                            Check the free space of the data directory."
                        }
                    }
                }
            }
            @if let Some(err) = &u.read_error {
                p { "The history cannot be read now: " span class="mono" { (err) } }
            }
        }
    }
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

fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}

fn machine_state(row: &MachineRow) -> Markup {
    if row.revoked {
        badge("bad", "revoked")
    } else {
        badge("ok", "active")
    }
}

fn when(now: Timestamp, t: Timestamp) -> Markup {
    html! { span title={ (t.display_secs()) " UTC" } { (ago(now.since(t))) } }
}

fn mono(text: &str) -> Markup {
    html! { span class="mono" { (text) } }
}

fn host_of(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => peer,
    }
}

fn machine_link(name: &str) -> Markup {
    html! { a href={ "/machines/" (utf8_percent_encode(name, NON_ALPHANUMERIC)) } { (name) } }
}

/// The whole document: the header line about the server, `main`, the footer.
fn document(title: &str, info: &PageInfo, now: Timestamp, main: Markup) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { a href="/" { "bootgate" } }
                    span class="meta" {
                        (info.public_url) " · up " (short(now.since(info.started)))
                        " · " (info.events) " events recorded"
                        @if let Some(n) = info.legacy_tls_machines {
                            " · " (n) " machines on old TLS suites"
                        }
                        " · " a href="/metrics" { "metrics" }
                        @if let Some(config) = &info.config { " · " (config) }
                    }
                }
                main {
                    (unrecorded_notice(&info.unrecorded, now))
                    (main)
                    p class="muted" {
                        "Rendered " (now.display_secs()) " UTC. \
                        Times are UTC; hover a relative time for the exact one."
                    }
                }
            }
        }
    };
    let mut out = page.into_string();
    out.push('\n');
    out
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

/// `/`: every enrolled machine with its last sighting and boot, then the
/// latest refusals and handshake failures.
pub fn status_page(
    now: Timestamp,
    info: &PageInfo,
    rows: &[MachineRow],
    failures: &[Event],
) -> String {
    let last_boots: Vec<Option<&Boot>> = rows
        .iter()
        .map(|r| r.seen.and_then(|s| s.last_boot.as_ref()))
        .collect();
    let main = html! {
        h2 { "Last boot of each machine" }
        (boot_cards(&last_boots))
        h2 { "Machines" }
        (machine_table(now, rows, &last_boots))
        h2 { "Recent refusals and failed handshakes" }
        (failure_table(now, failures))
    };
    document("bootgate status", info, now, main)
}

/// How many machines' last boot ended each way.
fn boot_cards(last_boots: &[Option<&Boot>]) -> Markup {
    let count = |f: &dyn Fn(&Boot) -> bool| last_boots.iter().flatten().filter(|b| f(b)).count();
    let cards = [
        ("machines", last_boots.len(), ""),
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
    html! {
        div class="cards" {
            @for (label, n, class) in cards {
                div class="card" {
                    div class="n" { (n) }
                    div class="l" {
                        @if class.is_empty() { (label) } @else { (badge(class, label)) }
                    }
                }
            }
        }
    }
}

fn machine_table(now: Timestamp, rows: &[MachineRow], last_boots: &[Option<&Boot>]) -> Markup {
    if rows.is_empty() {
        return html! {
            div class="empty" {
                "No machine is enrolled: " (mono("bootgate machine add NAME")) "."
            }
        };
    }
    html! {
        table {
            tr {
                th { "Machine" } th { "Profile" } th { "State" } th { "Last seen" }
                th { "From" } th { "Last boot" } th { "Outcome" } th class="num" { "Requests" }
                th class="num" { "Sent" } th { "Platform" }
            }
            @for (row, boot) in rows.iter().zip(last_boots) {
                tr {
                    td { (machine_link(row.name)) }
                    td { (row.profile.unwrap_or("—")) }
                    td { (machine_state(row)) }
                    @match row.seen {
                        Some(s) => {
                            td { (when(now, s.last_seen)) }
                            td { (mono(host_of(&s.last_peer))) }
                        }
                        None => { td { span class="muted" { "never" } } td {} }
                    }
                    @match boot {
                        Some(b) => {
                            @let (class, text) = boot_badge(b);
                            td { (when(now, b.started)) }
                            td { (badge(class, &text)) }
                            td class="num" { (b.requests) }
                            td class="num" { (bytes(b.bytes)) }
                            td { (platform(b)) }
                        }
                        None => {
                            td { span class="muted" { "—" } }
                            td { (badge("none", "no boot recorded")) }
                            td {} td {} td {}
                        }
                    }
                }
            }
        }
    }
}

/// `efi / x86_64`: what the machine said it runs on.
fn platform(b: &Boot) -> String {
    [b.platform.as_deref(), b.buildarch.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" / ")
}

fn failure_table(now: Timestamp, failures: &[Event]) -> Markup {
    if failures.is_empty() {
        return html! { div class="empty" { "None recorded." } };
    }
    html! {
        table {
            tr { th { "When" } th { "From" } th { "Who" } th { "What" } th { "Reason" } }
            @for e in failures {
                tr {
                    td { (when(now, e.time)) }
                    td class="mono" { (host_of(&e.peer)) }
                    td { (who(e)) }
                    td class="mono" { (what(e)) }
                    td { (badge("bad", e.failure_reason().as_deref().unwrap_or("?"))) }
                }
            }
        }
    }
}

/// The identity behind an event, for people.
fn who(e: &Event) -> Markup {
    if let Some(machine) = &e.machine {
        return machine_link(machine);
    }
    if e.subject.is_none() && e.issuer.is_none() && e.fingerprint.is_none() {
        return html! { span class="muted" { "no certificate" } };
    }
    // The parts present, one space apart.
    let mut first = true;
    let mut sep = move || if std::mem::take(&mut first) { "" } else { " " };
    html! {
        @if let Some(subject) = &e.subject { (sep()) (subject) }
        @if let Some(issuer) = &e.issuer { (sep()) "issued by " (issuer) }
        @if let Some(fp) = &e.fingerprint {
            (sep()) span class="mono" title=(fp) { (fp[..fp.len().min(12)]) "…" }
        }
    }
}

fn what(e: &Event) -> String {
    match e.kind {
        Kind::Handshake => text::request(e),
        Kind::Request => format!("{} → {}", text::request(e), text::status(e)),
    }
}

/// `/machines/NAME`: a machine and its latest boots with their requests.
pub fn machine_page(
    now: Timestamp,
    info: &PageInfo,
    row: &MachineRow,
    boots: &[BootDetail],
) -> String {
    let main = html! {
        h2 { "Machine " (row.name) }
        dl {
            dt { "fingerprint" } dd { (mono(row.fingerprint)) }
            dt { "profile" } dd { (row.profile.unwrap_or("—")) }
            dt { "state" } dd { (machine_state(row)) }
            @match row.seen {
                Some(s) => {
                    dt { "last seen" }
                    dd { (when(now, s.last_seen)) " (" (s.last_seen.display_secs()) " UTC)" }
                    dt { "from" } dd { (mono(&s.last_peer)) }
                }
                None => { dt { "last seen" } dd { span class="muted" { "never" } } }
            }
        }
        h2 { "Latest boots (" (boots.len()) ")" }
        @if boots.is_empty() {
            div class="empty" { "No boot recorded (or all past retention)." }
        }
        @for detail in boots {
            (boot_section(detail))
        }
    };
    document(&format!("{} · bootgate", row.name), info, now, main)
}

/// One boot: what the machine said, the outcome, every request.
fn boot_section(detail: &BootDetail) -> Markup {
    let b = &detail.boot;
    let (class, outcome) = boot_badge(b);
    html! {
        div class="boot" {
            h3 {
                (b.started.display_secs()) " UTC · " (badge(class, &outcome))
                " · from " (mono(host_of(&b.peer)))
                @for (name, value) in text::boot_facts(b) { " · " (name) " " (mono(value)) }
            }
            @if let Some(failed) = &b.failed_request {
                p { "First failure: " (mono(failed)) }
            }
            table {
                tr {
                    th { "At" } th { "Request" } th class="num" { "Status" }
                    th class="num" { "Sent" } th class="num" { "Time" } th { "Note" }
                }
                @for e in &detail.requests {
                    tr {
                        td class="mono" { (text::offset(e, b)) }
                        td class="mono" { (text::request(e)) }
                        td class="num" { (text::status(e)) }
                        td class="num" { (text::sent(e)) }
                        td class="num" { (e.duration_ms) " ms" }
                        td {
                            @if let Some(reason) = e.failure_reason() { (badge("bad", &reason)) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> PageInfo {
        PageInfo {
            public_url: "https://boot.example.com".into(),
            started: Timestamp::from_micros(1_700_000_000_000_000),
            events: 3,
            config: None,
            unrecorded: Unrecorded::default(),
            legacy_tls_machines: Some(1),
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

    /// Compares `actual` with `tests/golden/NAME`; `BOOTGATE_BLESS=1` writes it instead.
    fn assert_golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("BOOTGATE_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "reading {}: {e}; run with BOOTGATE_BLESS=1 to write it",
                path.display()
            )
        });
        if expected != actual {
            // Pages are long lines: show where they part, with some context.
            let at = expected
                .bytes()
                .zip(actual.bytes())
                .position(|(e, a)| e != a)
                .unwrap_or(expected.len().min(actual.len()));
            let context = |text: &str| {
                let end = (at + 80).min(text.len());
                let from = (0..=at.saturating_sub(80).min(end))
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                let to = (end..=text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                text[from..to].to_string()
            };
            panic!(
                "{name} differs from {} at byte {at}:\n expected …{}…\n   actual …{}…\n\
                 if the change is meant, run with BOOTGATE_BLESS=1 and review the diff",
                path.display(),
                context(&expected),
                context(actual)
            );
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + secs * 1_000_000)
    }

    /// A server an hour up, whose history lost a few events and recovered.
    fn golden_info() -> PageInfo {
        PageInfo {
            public_url: "https://boot.example.com:8443".into(),
            started: at(0),
            events: 1234,
            config: Some("config 1a2b3c4 <main>".into()),
            unrecorded: Unrecorded {
                dropped: 2,
                lost: 3,
                last_failure: Some(WriteFailure {
                    at: at(3000),
                    error: "No space left on device (os error 28)".into(),
                    recovered: Some(at(3300)),
                }),
                read_error: None,
            },
            legacy_tls_machines: Some(1),
        }
    }

    fn golden_boot(machine: &str, started: u64, outcome: Outcome, reason: Option<&str>) -> Boot {
        Boot {
            id: started,
            machine: machine.into(),
            fingerprint: format!("{machine}-fp").into(),
            reason: reason.map(str::to_string),
            failed_request: reason.map(|r| format!("GET /files/dtb → 404 ({r})")),
            outcome,
            started: at(started),
            last_activity: at(started + 2),
            settled: outcome != Outcome::ScriptOnly,
            ..boot(outcome, true)
        }
    }

    fn request(time: u64, path: &str, status: u16, bytes: u64, expected: u64) -> Event {
        let mut e = Event::new(Kind::Request, at(time), "192.0.2.7:4000".into());
        e.method = Some("GET".into());
        e.path = Some(path.into());
        e.status = Some(status);
        e.bytes = bytes;
        e.expected_bytes = Some(expected);
        e.duration_ms = 12;
        e
    }

    /// Every state a machine row and a failure row can show, with hostile
    /// text where a machine or a client controls it.
    #[test]
    fn status_page_matches_its_golden_file() {
        let now = at(3600);
        let seen = |machine: &str, boot: Option<Boot>| MachineSeen {
            machine: machine.into(),
            fingerprint: format!("{machine}-fp").into(),
            last_seen: at(3500),
            last_peer: "[2001:db8::7]:4000".into(),
            last_boot: boot,
        };
        let booted = seen(
            "gw-01",
            Some(golden_boot("gw-01", 3400, Outcome::FilesServed, None)),
        );
        let stuck = seen(
            "gw-02",
            Some(golden_boot("gw-02", 3590, Outcome::ScriptOnly, None)),
        );
        let failed = seen(
            "gw-03",
            Some(golden_boot(
                "gw-03",
                3000,
                Outcome::Failed,
                Some("not-found"),
            )),
        );
        let row = |name, profile, revoked, seen| MachineRow {
            name,
            fingerprint: "0123456789abcdef0123456789abcdef01234567",
            profile,
            revoked,
            seen,
        };
        let rows = [
            row("gw-01", Some("gateway"), false, Some(&booted)),
            row("gw-02", Some("gateway"), false, Some(&stuck)),
            row("gw-03", None, false, Some(&failed)),
            row("rack 7/<b>", Some("<i>lab</i>"), true, None),
        ];
        let mut hostile = Event::new(Kind::Handshake, at(3550), "198.51.100.9:5000".into());
        hostile.subject = Some("CN=<img src=x onerror=alert(1)>".into());
        hostile.issuer = Some("CN=\"elsewhere\" & co".into());
        hostile.fingerprint = Some("fedcba9876543210fedcba9876543210fedcba98".into());
        hostile.reason = Some("foreign-ca".into());
        let mut anonymous = Event::new(Kind::Request, at(3560), "[::1]:5001".into());
        anonymous.method = Some("GET".into());
        anonymous.path = Some("/boot/ipxe?<script>".into());
        anonymous.status = Some(401);
        let mut revoked = request(3570, "/boot/ipxe", 403, 20, 20);
        revoked.machine = Some("rack 7/<b>".into());
        revoked.reason = Some("revoked".into());
        let page = status_page(now, &golden_info(), &rows, &[hostile, anonymous, revoked]);
        assert_golden("status-page.html", &page);

        let empty = status_page(now, &info(), &[], &[]);
        assert_golden("status-page-empty.html", &empty);
    }

    /// A machine with a failed boot (a download cut short, a missing file)
    /// and a good one, and a machine never seen.
    #[test]
    fn machine_page_matches_its_golden_file() {
        let now = at(3600);
        let failed = golden_boot("gw-03", 3000, Outcome::Failed, Some("not-found"));
        let seen = MachineSeen {
            machine: "gw-03".into(),
            fingerprint: "gw-03-fp".into(),
            last_seen: at(3402),
            last_peer: "192.0.2.7:4000".into(),
            last_boot: Some(failed.clone()),
        };
        let row = MachineRow {
            name: "gw-03",
            fingerprint: "0123456789abcdef0123456789abcdef01234567",
            profile: Some("gateway"),
            revoked: false,
            seen: Some(&seen),
        };
        let boots = [
            BootDetail {
                boot: golden_boot("gw-03", 3400, Outcome::FilesServed, None),
                requests: vec![
                    request(3400, "/boot/ipxe", 200, 312, 312),
                    request(3401, "/files/vmlinuz", 200, 9_000_000, 9_000_000),
                ],
            },
            BootDetail {
                boot: Boot {
                    mac: None,
                    ..failed
                },
                requests: vec![
                    request(3000, "/boot/ipxe", 200, 312, 312),
                    request(3001, "/files/initrd", 200, 1_048_576, 67_108_864),
                    request(3002, "/files/dtb", 404, 10, 10),
                ],
            },
        ];
        assert_golden(
            "machine-page.html",
            &machine_page(now, &golden_info(), &row, &boots),
        );
        let never = MachineRow {
            name: "lab-x86",
            fingerprint: "89abcdef0123456789abcdef0123456789abcdef",
            profile: None,
            revoked: true,
            seen: None,
        };
        assert_golden(
            "machine-page-never-seen.html",
            &machine_page(now, &info(), &never, &[]),
        );
    }
}
