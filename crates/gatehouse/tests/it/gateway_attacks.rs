//! Attacks on the gateway's data path, against the real `gatehouse gateway`
//! in front of a naive upstream that executes whatever reaches it (and, for
//! resumable streams, the official TypeScript SDK server with its event
//! store). Each attack must fail: the client gets a precise error, and the
//! upstream executed nothing it should not have — asserted on what the
//! upstream recorded, not only on the status.

use gatehouse_testkit::DataDir;
use gatehouse_testkit::gw::{Gw, GwOptions, POLICIES, sse_ids, sse_messages};
use gatehouse_testkit::issuer::TestIssuer;
use gatehouse_testkit::naive::{Broken, Naive, TOOLS};
use serde_json::{Value, json};
use std::time::Duration;

struct Setup {
    _dir: DataDir,
    issuer: TestIssuer,
    up: Naive,
    gw: Gw,
    /// A token for `ci-bot`, which may call `search_issues` only.
    token: String,
}

async fn setup() -> Setup {
    let dir = DataDir::new();
    let policies = dir.path().join("policies.cedar");
    std::fs::write(&policies, POLICIES).unwrap();
    let issuer = TestIssuer::start().await;
    let up = Naive::start().await;
    let gw = Gw::start(&GwOptions {
        policies: &policies,
        issuer: &issuer.base,
        upstream: &up.url,
        resource: None,
        port: None,
        extra: &[],
    })
    .unwrap();
    let token = issuer.token("ci-bot", &gw.url);
    Setup {
        _dir: dir,
        issuer,
        up,
        gw,
        token,
    }
}

fn call(id: Option<&str>, name: &str) -> String {
    let id = id.map(|i| format!(r#""id":{i},"#)).unwrap_or_default();
    format!(
        r#"{{"jsonrpc":"2.0",{id}"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
    )
}

fn list(id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#)
}

fn tool_names(msg: &Value) -> Vec<String> {
    msg["result"]["tools"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect()
}

fn executed(method: &str, name: Option<&str>) -> (String, Option<String>) {
    (method.to_string(), name.map(String::from))
}

#[tokio::test]
async fn a_denied_notification_in_a_batch_never_reaches_the_upstream() {
    let s = setup().await;
    // A denied tools/call as a notification (no id, so no error to record)
    // next to an allowed ping.
    let batch = format!(
        r#"[{},{{"jsonrpc":"2.0","id":1,"method":"ping"}}]"#,
        call(None, "delete_repo")
    );
    let r = s.gw.post(&s.token, &batch, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!([{"jsonrpc": "2.0", "id": 1, "result": {}}]));
    assert_eq!(s.up.calls(), vec![executed("ping", None)]);
    let dropped = gatehouse_testkit::eventually(Duration::from_secs(5), || async {
        s.gw.logs().contains("refused notification dropped")
    })
    .await;
    assert!(
        dropped,
        "the dropped notification is logged: {}",
        s.gw.logs()
    );
}

#[tokio::test]
async fn a_batch_with_nothing_allowed_never_contacts_the_upstream() {
    let s = setup().await;
    let batch = format!("[{},{}]", call(None, "delete_repo"), call(None, "merge_pr"));
    let r = s.gw.post(&s.token, &batch, &[]).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32003);
    assert!(r.header("www-authenticate").is_none());
    let batch = format!(
        "[{},{}]",
        call(Some("1"), "delete_repo"),
        call(None, "merge_pr")
    );
    let r = s.gw.post(&s.token, &batch, &[]).await;
    assert_eq!(r.status, 200, "the request is answered: {}", r.text);
    assert_eq!(r.json.as_array().map(Vec::len), Some(1), "{}", r.text);
    assert_eq!(r.json[0]["id"], 1);
    assert_eq!(r.json[0]["error"]["code"], -32003);
    assert!(
        s.up.requests().is_empty(),
        "the upstream was never contacted"
    );
}

#[tokio::test]
async fn refused_batch_elements_get_their_errors_and_only_allowed_ones_are_forwarded() {
    let s = setup().await;
    let batch = format!(
        r#"[{},{},{},42,{{"jsonrpc":"2.0","id":{{}},"method":"ping"}},{}]"#,
        call(Some("1"), "search_issues"),
        call(Some("\"two\""), "delete_repo"),
        call(None, "merge_pr"),
        list("3")
    );
    let r = s.gw.post(&s.token, &batch, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let answers = r.json.as_array().unwrap();
    let by_id = |id: Value| answers.iter().find(|a| a["id"] == id).cloned().unwrap();
    assert_eq!(
        by_id(json!(1))["result"]["content"][0]["text"],
        "called search_issues"
    );
    assert_eq!(by_id(json!("two"))["error"]["code"], -32003);
    assert_eq!(tool_names(&by_id(json!(3))), vec!["search_issues"]);
    let invalid: Vec<&Value> = answers.iter().filter(|a| a["id"].is_null()).collect();
    assert_eq!(
        invalid.len(),
        2,
        "a number and an object id are invalid: {answers:?}"
    );
    assert!(invalid.iter().all(|a| a["error"]["code"] == -32600));
    assert_eq!(
        answers.len(),
        5,
        "nothing answers a notification: {answers:?}"
    );
    assert_eq!(
        s.up.calls(),
        vec![
            executed("tools/call", Some("search_issues")),
            executed("tools/list", None)
        ]
    );
    // Too many elements at once: refused whole.
    let many = format!("[{}]", vec![list("1"); 101].join(","));
    let r = s.gw.post(&s.token, &many, &[]).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"]["code"], -32600);
    assert_eq!(s.up.calls().len(), 2, "nothing more executed");
}

#[tokio::test]
async fn list_responses_are_filtered_whatever_the_request_ids_spelling() {
    let s = setup().await;
    for sse in [false, true] {
        s.up.set(|st| st.sse = sse);
        for id in [
            "-0",
            "1.0",
            "1e0",
            "0",
            "1",
            "\"1\"",
            "-1.5e3",
            "\"\\u0031\"",
        ] {
            let r = s.gw.post(&s.token, &list(id), &[]).await;
            assert_eq!(r.status, 200, "{id}: {}", r.text);
            let msg = if sse {
                let msgs = sse_messages(&r.text);
                assert_eq!(msgs.len(), 1, "{id}: {}", r.text);
                msgs[0].clone()
            } else {
                r.json.clone()
            };
            assert_eq!(tool_names(&msg), vec!["search_issues"], "{id}: {}", r.text);
            for hidden in &TOOLS[1..] {
                assert!(!r.text.contains(hidden), "{id}: {}", r.text);
            }
            // The id comes back exactly as the client wrote it.
            assert!(r.text.contains(&format!("\"id\":{id}")), "{id}: {}", r.text);
        }
    }
    assert_eq!(s.up.calls().len(), 16);
}

#[tokio::test]
async fn a_resumed_stream_replays_the_list_filtered() {
    let s = setup().await;
    s.up.set(|st| st.sse = true);
    let r = s.gw.post(&s.token, &list("5"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(tool_names(&sse_messages(&r.text)[0]), vec!["search_issues"]);
    let ids = sse_ids(&r.text);
    assert_eq!(ids.len(), 2, "priming event and answer: {}", r.text);
    assert!(ids[0].starts_with("ev-1."), "event ids are bound: {ids:?}");
    // Resume after the priming event: the upstream replays its answer.
    let r =
        s.gw.send("GET", &s.token, None, &[("last-event-id", &ids[0])])
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let replayed = sse_messages(&r.text);
    assert_eq!(replayed.len(), 1, "{}", r.text);
    assert_eq!(replayed[0]["id"], 5);
    assert_eq!(tool_names(&replayed[0]), vec!["search_issues"]);
    assert!(!r.text.contains("delete_repo"), "{}", r.text);
    let (_, _, resumed) = s.up.requests().last().cloned().unwrap();
    assert_eq!(
        resumed.as_deref(),
        Some("ev-1"),
        "the upstream sees its own id"
    );

    // Another principal cannot resume it; nor can a made-up or bare id.
    let other = s.issuer.token("other-bot", &s.gw.url);
    let before = s.up.requests().len();
    for (token, id) in [
        (&other, ids[0].as_str()),
        (&s.token, "ev-1"),
        (&s.token, "ev-1.AAAA"),
    ] {
        let r =
            s.gw.send("GET", token, None, &[("last-event-id", id)])
                .await;
        assert_eq!(r.status, 400, "{id}: {}", r.text);
        assert_eq!(r.json["error"]["code"], -32600);
    }
    assert_eq!(s.up.requests().len(), before, "none reached the upstream");
}

#[tokio::test]
async fn a_get_stream_filters_lists_by_shape_and_withholds_answers_nobody_asked_for() {
    let s = setup().await;
    let all = r#"{"tools":[{"name":"search_issues"},{"name":"delete_repo"},{"name":"merge_pr"}]}"#;
    s.up.set(|st| {
        st.get_events = vec![
            // A response to no request the gateway forwarded.
            format!(r#"{{"jsonrpc":"2.0","id":99,"result":{all}}}"#),
            // A server-to-client request and a notification carrying lists.
            format!(r#"{{"jsonrpc":"2.0","id":"srv-1","method":"x/y","result":{all}}}"#),
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}"#.into(),
            // An error answering nothing is passed on.
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"oops"}}"#.into(),
            "not json".into(),
        ]
    });
    let r = s.gw.send("GET", &s.token, None, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("delete_repo"), "{}", r.text);
    assert!(!r.text.contains("\"id\":99"), "{}", r.text);
    let msgs = sse_messages(&r.text);
    assert_eq!(msgs.len(), 4, "{}", r.text);
    assert_eq!(msgs[0]["id"], "srv-1", "server requests keep their ids");
    assert_eq!(tool_names(&msgs[0]), vec!["search_issues"]);
    assert_eq!(msgs[1]["method"], "notifications/message");
    assert_eq!(msgs[2]["error"]["message"], "oops");
    assert_eq!(
        msgs[3]["error"]["code"], -32603,
        "what does not parse fails closed"
    );
    assert!(msgs[3]["id"].is_null());
}

#[tokio::test]
async fn list_responses_that_do_not_parse_fail_closed() {
    let s = setup().await;
    for sse in [false, true] {
        for broken in [
            Broken::LoneSurrogate,
            Broken::NaN,
            Broken::Deep,
            Broken::NotAnArray,
        ] {
            s.up.set(|st| {
                st.sse = sse;
                st.broken = Some(broken);
            });
            let r = s.gw.post(&s.token, &list("\"L\""), &[]).await;
            let what = format!("{broken:?} sse={sse}: {}", r.text);
            assert!(!r.text.contains("delete_repo"), "{what}");
            assert!(!r.text.contains("merge_pr"), "{what}");
            let msg = if sse {
                sse_messages(&r.text).pop().expect(&what)
            } else {
                r.json.clone()
            };
            assert_eq!(msg["id"], "L", "{what}");
            assert_eq!(msg["error"]["code"], -32603, "{what}");
        }
    }
}

#[tokio::test]
async fn methods_other_than_post_get_and_delete_are_405_and_never_forwarded() {
    let s = setup().await;
    let body = call(Some("1"), "delete_repo");
    for method in ["PUT", "PATCH", "PROPFIND", "HEAD"] {
        let r = s.gw.send(method, &s.token, Some(&body), &[]).await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, POST, DELETE"), "{method}");
        assert!(r.header("www-authenticate").is_none());
        if method != "HEAD" {
            assert_eq!(r.json["error"]["code"], -32600, "{method}: {}", r.text);
        }
    }
    // Even without a token: nothing is forwarded, and 405 says why.
    let r =
        s.gw.http
            .put(&s.gw.url)
            .body(body.clone())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 405);
    // A GET or DELETE with a body is refused, not forwarded undecided.
    for method in ["GET", "DELETE"] {
        let r = s.gw.send(method, &s.token, Some(&body), &[]).await;
        assert_eq!(r.status, 400, "{method}: {}", r.text);
        assert_eq!(r.json["error"]["code"], -32600);
    }
    assert!(s.up.requests().is_empty(), "{:?}", s.up.requests());
    assert!(s.up.executed().is_empty());
    // A CORS preflight is still answered by the origin layer.
    let pre =
        s.gw.http
            .request(reqwest::Method::OPTIONS, &s.gw.url)
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    // The allowed methods still work.
    let r = s.gw.send("DELETE", &s.token, None, &[]).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(s.up.requests().len(), 1);
}

/// The official TypeScript SDK server, resumable (its InMemoryEventStore):
/// a GET with Last-Event-ID replays the stream of a tools/list, and the
/// replay is filtered like the original.
#[tokio::test]
async fn the_sdk_servers_resumed_stream_replays_tools_list_filtered() {
    use gatehouse_testkit::interop::{Guard, interop_dir};
    use gatehouse_testkit::peers::require_sdk;
    require_sdk("gateway_attacks");
    let dir = DataDir::new();
    let policies = dir.path().join("policies.cedar");
    std::fs::write(&policies, POLICIES).unwrap();
    let port = gatehouse_testkit::free_port();
    let child = std::process::Command::new("node")
        .arg(interop_dir().join("server.mjs"))
        .arg(port.to_string())
        .arg("--resumable")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _node = Guard(child);
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let ready = gatehouse_testkit::eventually(Duration::from_secs(30), || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(ready, "the SDK server did not start");
    let issuer = TestIssuer::start().await;
    let gw = Gw::start(&GwOptions {
        policies: &policies,
        issuer: &issuer.base,
        upstream: &upstream,
        resource: None,
        port: None,
        extra: &[],
    })
    .unwrap();
    let token = issuer.token("ci-bot", &gw.url);
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = gw.post(&token, init, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let session = r.header("mcp-session-id").unwrap().to_string();
    let h = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let r = gw
        .post(
            &token,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            &h,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = gw.post(&token, &list("1e0"), &h).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let msgs = sse_messages(&r.text);
    assert_eq!(
        tool_names(msgs.last().unwrap()),
        vec!["search_issues"],
        "{}",
        r.text
    );
    assert!(r.text.contains(r#""id":1e0"#), "{}", r.text);
    let ids = sse_ids(&r.text);
    assert!(
        ids.len() >= 2,
        "a priming event, then the answer: {}",
        r.text
    );
    // Resume after the priming event: the SDK replays the answer.
    let mut get = gw
        .http
        .get(&gw.url)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", &ids[0])
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let mut text = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = get.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\"result\"") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no replay: {text}");
    let replayed = sse_messages(&text);
    let answer = replayed.iter().find(|m| m.get("result").is_some()).unwrap();
    assert_eq!(tool_names(answer), vec!["search_issues"], "{text}");
    assert!(
        !text.contains("delete_repo") && !text.contains("merge_pr"),
        "{text}"
    );
    assert!(text.contains(r#""id":1e0"#), "{text}");
}
