//! Communities (find, apply, moderate; company accounts as hosts) and the
//! anonymous consultation tab (attack case 25: nobody but an audited
//! staff moderator learns who wrote there).

use crate::support::*;
use kizuna_client::{ClientError, Tokens};
use kizuna_domain::protocol::{ErrorCode, Event};
use kizuna_domain::{EventKind, GroupId, TimelineId, UserId};
use serde_json::{Value, json};

/// The error code and message of a refused call.
fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (Option<u16>, ErrorCode, String) {
    match r {
        Err(ClientError::Server {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn token(t: &Tokens) -> Option<&str> {
    Some(t.access_token.as_str())
}

/// The nurse's community ("Wound care study") and its consultation timeline.
async fn community(w: &World) -> (GroupId, TimelineId) {
    let (_, v) = w
        .client
        .get("/v1/communities?q=Wound", token(&w.nurse))
        .await
        .unwrap();
    let g = v["communities"][0]["group_id"].as_i64().expect("community");
    (GroupId(g), consultation(w, &w.nurse, GroupId(g)).await)
}

/// A group's consultation timeline, as its member `who` sees the group.
async fn consultation(w: &World, who: &Tokens, g: GroupId) -> TimelineId {
    let (_, v) = w
        .client
        .get(&format!("/v1/admin/groups/{}", g.get()), token(who))
        .await
        .unwrap();
    let t = v["timelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "consultation")
        .expect("consultation timeline");
    TimelineId(t["timeline_id"].as_i64().unwrap())
}

/// `who` applies to `g` and `moderator` approves; returns the application.
async fn join(w: &World, who: &Tokens, moderator: &Tokens, g: GroupId) -> Value {
    let (status, a) = w
        .client
        .post(
            &format!("/v1/communities/{}/applications", g.get()),
            token(who),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!((status, a["status"].as_str()), (201, Some("pending")));
    let (_, a) = w
        .client
        .post(
            &format!(
                "/v1/communities/{}/applications/{}/approve",
                g.get(),
                a["id"]
            ),
            token(moderator),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(a["status"], "approved");
    a
}

/// Audit entries of one action, read with `kizuna admin audit`.
fn audit(w: &World, action: &str) -> Vec<Value> {
    let out = w.server.cli(
        &["admin", "audit", "--action", action, "--limit", "1000"],
        &[],
    );
    assert!(
        out.status.success(),
        "kizuna admin audit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    // One JSON document (an array, or an object with `entries`) or JSON lines.
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Object(o)) if o.contains_key("entries") => {
            o["entries"].as_array().cloned().unwrap_or_default()
        }
        _ => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("audit JSON line"))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_find_a_community_apply_and_post_once_a_moderator_approves() {
    for db in backends() {
        let w = World::new(&db).await;
        let c = &w.client;
        let (g, _) = community(&w).await;
        let apps = format!("/v1/communities/{}/applications", g.get());

        // Discovery: by part of the name, any case; pattern characters are literal.
        let (_, v) = c
            .get("/v1/communities?q=wound%20CARE", token(&w.doctor))
            .await
            .unwrap();
        let found = v["communities"].as_array().unwrap();
        assert_eq!(found.len(), 1, "{v}");
        assert_eq!(found[0]["group_id"], g.get());
        assert_eq!(found[0]["name"], "Wound care study");
        assert_eq!(found[0]["member_count"], 1);
        assert_eq!(found[0]["member"], false);
        for q in ["zzz", "%25", "_"] {
            let (_, v) = c
                .get(&format!("/v1/communities?q={q}"), token(&w.doctor))
                .await
                .unwrap();
            assert_eq!(v["communities"], json!([]), "q={q}");
        }
        let (_, v) = c.get("/v1/communities", token(&w.nurse)).await.unwrap();
        let all = v["communities"].as_array().unwrap();
        assert!(
            all.iter().all(|x| x["name"] != "Disaster contact network"),
            "free groups are not listed: {v}"
        );
        assert_eq!(all[0]["member"], true);

        // Before approval the community's timelines do not exist for the applicant.
        let mut doctor = w.ws(&w.doctor).await;
        let err = doctor.subscribe(&[(w.community_main, 0)]).await;
        assert_eq!(refusal(err).1, ErrorCode::NotFound);

        let (status, a) = c.post(&apps, token(&w.doctor), &json!({})).await.unwrap();
        assert_eq!(status, 201);
        assert_eq!(a["status"], "pending");
        assert_eq!(a["group_id"], g.get());
        let (status, code, _) = refusal(c.post(&apps, token(&w.doctor), &json!({})).await);
        assert_eq!(
            (status, code),
            (Some(409), ErrorCode::Conflict),
            "one pending application per person"
        );
        let (_, mine) = c
            .get("/v1/me/applications", token(&w.doctor))
            .await
            .unwrap();
        assert_eq!(mine["applications"].as_array().unwrap().len(), 1);
        assert_eq!(mine["applications"][0]["group_name"], "Wound care study");
        assert_eq!(mine["applications"][0]["status"], "pending");

        // Only moderators see and decide applications.
        let (_, pending) = c
            .get(&format!("{apps}?status=pending"), token(&w.nurse))
            .await
            .unwrap();
        let pending = pending["applications"].as_array().unwrap().clone();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0]["applicant"]["user_id"], uid(&w.doctor).get());
        assert_eq!(
            refusal(c.get(&apps, token(&w.doctor)).await).1,
            ErrorCode::NotFound,
            "a non-member learns nothing"
        );
        let approve = format!("{apps}/{}/approve", a["id"]);
        assert_eq!(
            refusal(c.post(&approve, token(&w.outsider), &json!({})).await).1,
            ErrorCode::NotFound
        );
        let (_, done) = c.post(&approve, token(&w.nurse), &json!({})).await.unwrap();
        assert_eq!(done["status"], "approved");
        assert_eq!(
            refusal(c.post(&approve, token(&w.nurse), &json!({})).await).1,
            ErrorCode::Conflict,
            "decided once"
        );

        // Now a member: subscribe, post, seen by the owner.
        doctor.subscribe(&[(w.community_main, 0)]).await.unwrap();
        let (ev, _) = doctor
            .post(
                w.community_main,
                "q1",
                "Which dressing for a stage 2 ulcer?",
            )
            .await
            .unwrap();
        let mut nurse = w.ws(&w.nurse).await;
        let (hist, _) = nurse.history(w.community_main, None, None).await.unwrap();
        assert_eq!(hist[0].seq, ev.seq);
        assert_eq!(
            hist[0].author.as_ref().map(|a| a.user_id),
            Some(uid(&w.doctor)),
            "the main timeline is not anonymous"
        );
        let (_, v) = c.get("/v1/communities", token(&w.doctor)).await.unwrap();
        assert_eq!(v["communities"][0]["member"], true);
        assert_eq!(v["communities"][0]["member_count"], 2);
        let (status, _, _) = refusal(c.post(&apps, token(&w.doctor), &json!({})).await);
        assert_eq!(status, Some(403), "members do not apply");
        // A plain member does not moderate.
        let (_, p) = c
            .post(&apps, token(&w.pharmacist), &json!({}))
            .await
            .unwrap();
        assert_eq!(
            refusal(
                c.post(
                    &format!("{apps}/{}/approve", p["id"]),
                    token(&w.doctor),
                    &json!({})
                )
                .await
            )
            .1,
            ErrorCode::Forbidden
        );

        // Denied: not a member. A new application may follow, and be withdrawn.
        let (_, d) = c
            .post(
                &format!("{apps}/{}/deny", p["id"]),
                token(&w.nurse),
                &json!({}),
            )
            .await
            .unwrap();
        assert_eq!(d["status"], "denied");
        let mut pharmacist = w.ws(&w.pharmacist).await;
        assert_eq!(
            refusal(pharmacist.subscribe(&[(w.community_main, 0)]).await).1,
            ErrorCode::NotFound
        );
        let (_, again) = c
            .post(&apps, token(&w.pharmacist), &json!({}))
            .await
            .unwrap();
        assert_eq!(again["status"], "pending");
        let withdraw = format!("{apps}/{}/withdraw", again["id"]);
        assert_eq!(
            refusal(c.post(&withdraw, token(&w.nurse), &json!({})).await).1,
            ErrorCode::NotFound,
            "only the applicant withdraws"
        );
        let (_, wd) = c
            .post(&withdraw, token(&w.pharmacist), &json!({}))
            .await
            .unwrap();
        assert_eq!(wd["status"], "withdrawn");
        let (_, pending) = c
            .get(&format!("{apps}?status=pending"), token(&w.nurse))
            .await
            .unwrap();
        assert_eq!(pending["applications"], json!([]));
        let (_, all) = c.get(&apps, token(&w.nurse)).await.unwrap();
        assert_eq!(all["applications"].as_array().unwrap().len(), 3);

        for (action, actor) in [
            ("community.apply", &w.pharmacist),
            ("community.approve", &w.nurse),
            ("community.deny", &w.nurse),
            ("community.withdraw", &w.pharmacist),
        ] {
            let entries = audit(&w, action);
            assert!(
                entries.iter().any(|e| e["outcome"] == "ok"
                    && e["actor_user_id"] == uid(actor).get()
                    && e["group_id"] == g.get()),
                "{action}: {entries:?}"
            );
        }
    }
}

/// `who`'s refused application to group `g`.
async fn apply_refusal(w: &World, g: i64, who: &Tokens) -> (Option<u16>, ErrorCode, String) {
    refusal(
        w.client
            .post(
                &format!("/v1/communities/{g}/applications"),
                token(who),
                &json!({}),
            )
            .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_and_patient_groups_cannot_be_applied_to_and_answer_like_missing_ids() {
    for db in backends() {
        let w = World::new(&db).await;
        let c = &w.client;
        let mut nurse = w.ws(&w.nurse).await;
        let free = nurse
            .timelines()
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.timeline_id == w.free_main)
            .unwrap()
            .group_id;
        let missing = apply_refusal(&w, 987_654, &w.outsider).await;
        assert_eq!((missing.0, missing.1), (Some(404), ErrorCode::NotFound));
        for (g, who) in [
            (free.get(), &w.outsider),
            (w.group.get(), &w.outsider),
            // Even a member of the patient group.
            (w.group.get(), &w.doctor),
        ] {
            let got = apply_refusal(&w, g, who).await;
            assert_eq!(
                (got.0, got.1, &got.2),
                (missing.0, missing.1, &missing.2),
                "group {g}"
            );
        }
        // Family members neither find nor join communities.
        let (status, code, _) = refusal(c.get("/v1/communities", token(&w.family)).await);
        assert_eq!((status, code), (Some(403), ErrorCode::Forbidden));
        let (_, v) = c
            .get("/v1/communities?q=Wound", token(&w.operator))
            .await
            .unwrap();
        assert_eq!(v["communities"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_company_account_hosts_and_joins_communities_and_nothing_else() {
    for db in backends() {
        let w = World::new(&db).await;
        let c = &w.client;
        c.post(
            "/v1/admin/users",
            token(&w.operator),
            &json!({"login": "acme", "display_name": "Acme Medical", "kind": "company", "password": PASSWORD}),
        )
        .await
        .unwrap();
        let acme = c.login("acme", PASSWORD).await.unwrap();
        let company = GroupId(
            c.post(
                "/v1/admin/groups",
                token(&acme),
                &json!({"kind": "community", "name": "Home care equipment forum"}),
            )
            .await
            .unwrap()
            .1["id"]
                .as_i64()
                .unwrap(),
        );
        let (status, code, _) = refusal(
            c.post(
                "/v1/admin/groups",
                token(&acme),
                &json!({"kind": "free", "name": "Sales team"}),
            )
            .await,
        );
        assert_eq!((status, code), (Some(403), ErrorCode::Forbidden));
        let (_, v) = c
            .get("/v1/communities?q=equipment", token(&acme))
            .await
            .unwrap();
        assert_eq!(v["communities"][0]["group_id"], company.get());
        assert_eq!(v["communities"][0]["member"], true);

        // Posts in its own community, and in another once approved.
        let (_, g) = c
            .get(&format!("/v1/admin/groups/{}", company.get()), token(&acme))
            .await
            .unwrap();
        let main = g["timelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == "main")
            .map(|t| TimelineId(t["timeline_id"].as_i64().unwrap()))
            .unwrap();
        let mut acme_ws = w.ws(&acme).await;
        acme_ws
            .post(main, "a1", "New pressure-relief mattress available")
            .await
            .unwrap();
        let (nurse_community, _) = community(&w).await;
        join(&w, &acme, &w.nurse, nurse_community).await;
        acme_ws
            .post(w.community_main, "a2", "Happy to answer questions")
            .await
            .unwrap();

        // Never into a patient group: neither added nor by applying.
        let (status, code, _) = refusal(
            c.post(
                &format!("/v1/admin/groups/{}/members", w.group.get()),
                token(&w.nurse),
                &json!({"user_id": uid(&acme).get(), "role": "member"}),
            )
            .await,
        );
        // (answered like an unknown user id: ids tell nothing)
        assert_eq!((status, code), (Some(404), ErrorCode::NotFound));
        let (status, code, _) = refusal(
            c.post(
                &format!("/v1/communities/{}/applications", w.group.get()),
                token(&acme),
                &json!({}),
            )
            .await,
        );
        assert_eq!((status, code), (Some(404), ErrorCode::NotFound));
        assert_eq!(
            refusal(acme_ws.subscribe(&[(w.team, 0)]).await).1,
            ErrorCode::NotFound
        );

        // The company moderates its community's members but may not lift
        // the consultation tab's anonymity.
        join(&w, &w.nurse, &acme, company).await;
        let consult = consultation(&w, &acme, company).await;
        let mut nurse = w.ws(&w.nurse).await;
        let (ev, _) = nurse
            .post(consult, "n1", "Is this mattress covered by insurance?")
            .await
            .unwrap();
        let reveal = format!(
            "/v1/timelines/{}/events/{}/reveal-author",
            consult.get(),
            ev.seq
        );
        let (status, code, _) = refusal(c.post(&reveal, token(&acme), &json!({})).await);
        assert_eq!(
            (status, code),
            (Some(403), ErrorCode::Forbidden),
            "company moderator"
        );
        let (status, code, _) = refusal(c.post(&reveal, token(&w.nurse), &json!({})).await);
        assert_eq!(
            (status, code),
            (Some(403), ErrorCode::Forbidden),
            "plain member"
        );
    }
}

/// Every user-id field (`user_id`, `author_id`) anywhere in a JSON value.
fn user_ids(v: &Value, out: &mut Vec<i64>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if matches!(k.as_str(), "user_id" | "author_id")
                    && let Some(n) = x.as_i64()
                {
                    out.push(n);
                }
                user_ids(x, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|x| user_ids(x, out)),
        _ => {}
    }
}

/// Fails if any frame names `author` (by id, login, display name or profession).
fn assert_anonymous(frames: &[String], author: UserId, names: &[&str]) {
    assert!(!frames.is_empty());
    for f in frames {
        let v: Value = serde_json::from_str(f).expect("JSON frame");
        let mut ids = Vec::new();
        user_ids(&v, &mut ids);
        assert!(!ids.contains(&author.get()), "author's id in {f}");
        for n in names {
            assert!(!f.contains(n), "{n:?} in {f}");
        }
    }
}

fn assert_anonymous_event(ev: &Event) {
    assert!(ev.author.is_none(), "{ev:?}");
    assert!(ev.anonymous);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consultation_posts_name_their_author_to_nobody_but_an_audited_staff_moderator() {
    for db in backends() {
        let w = World::new(&db).await;
        let c = &w.client;
        let (g, consult) = community(&w).await;
        // A (the doctor, display name "doctor", a physician) asks; B (the
        // pharmacist) reads.
        join(&w, &w.doctor, &w.nurse, g).await;
        join(&w, &w.pharmacist, &w.nurse, g).await;
        let a_id = uid(&w.doctor);
        let a_names = ["doctor", "physician"];

        let mut b = w.ws(&w.pharmacist).await;
        b.record_raw();
        b.subscribe(&[(consult, 0)]).await.unwrap();
        let mut a = w.ws(&w.doctor).await;
        let (mine, _) = a
            .post(consult, "a-1", "Is a 3 cm sacral wound stage 3?")
            .await
            .unwrap();
        assert_anonymous_event(&mine);
        assert_eq!(
            mine.client_msg_id.as_deref(),
            Some("a-1"),
            "the author's own answer keeps her key"
        );
        let live = b.next_event(WAIT).await.unwrap();
        assert_anonymous_event(&live);
        assert_eq!((live.seq, live.client_msg_id), (mine.seq, None));
        // The owner posts too: the same anonymity for everyone.
        let mut nurse = w.ws(&w.nurse).await;
        let (other, _) = nurse
            .post(consult, "n-1", "Please attach a photo next time")
            .await
            .unwrap();
        assert_anonymous_event(&other);
        assert_anonymous_event(&b.next_event(WAIT).await.unwrap());

        // History: anonymous for B; the author finds her own post by `mine`.
        let (hist, _) = b.history(consult, None, None).await.unwrap();
        assert_eq!(hist.len(), 2);
        for ev in &hist {
            assert_anonymous_event(ev);
            assert!(!ev.mine);
        }
        let (hist_a, _) = a.history(consult, None, None).await.unwrap();
        let own: Vec<_> = hist_a.iter().filter(|e| e.mine).map(|e| e.seq).collect();
        assert_eq!(own, vec![mine.seq]);
        assert!(hist_a.iter().all(|e| e.author.is_none()));

        // 了解 and the list of who acknowledged name the acknowledgers only.
        b.ack(consult, mine.seq).await.unwrap();
        let acks = b.acks(consult, mine.seq).await.unwrap();
        assert_eq!(
            acks.iter().map(|k| k.user.user_id).collect::<Vec<_>>(),
            vec![uid(&w.pharmacist)]
        );

        // B cannot edit or delete A's post, and is told exactly what it is
        // told about the owner's post.
        let edit_a = refusal(b.edit(consult, mine.seq, "changed").await);
        let edit_n = refusal(b.edit(consult, other.seq, "changed").await);
        assert_eq!(edit_a, edit_n);
        assert_eq!(edit_a.1, ErrorCode::Forbidden);
        let del_a = refusal(b.delete(consult, mine.seq).await);
        let del_n = refusal(b.delete(consult, other.seq).await);
        assert_eq!(del_a, del_n);
        assert_eq!(del_a.1, ErrorCode::Forbidden);

        // A edits while B is away; B catches up after reconnecting.
        let last = hist[0].seq;
        let mut frames = b.take_raw();
        b.close().await.unwrap();
        let edited = a
            .edit(
                consult,
                mine.seq,
                "Is a 3 cm sacral wound with slough stage 3?",
            )
            .await
            .unwrap();
        assert_anonymous_event(&edited);
        let mut b = w.ws(&w.pharmacist).await;
        b.record_raw();
        let (caught, _) = b.subscribe(&[(consult, last)]).await.unwrap();
        assert_eq!(caught.len(), 1);
        assert_eq!(
            (caught[0].kind, caught[0].target_seq),
            (EventKind::Edit, Some(mine.seq))
        );
        assert_anonymous_event(&caught[0]);

        // A deletes: the tombstone is anonymous, live and in history.
        let tomb = a.delete(consult, mine.seq).await.unwrap();
        assert_anonymous_event(&tomb);
        let live = b.next_event(WAIT).await.unwrap();
        assert_eq!(live.kind, EventKind::Delete);
        assert_anonymous_event(&live);
        let (hist, _) = b.history(consult, None, None).await.unwrap();
        assert!(hist.iter().all(|e| e.author.is_none() && e.anonymous));
        let after = refusal(b.edit(consult, mine.seq, "again").await);
        assert_eq!(after, edit_n, "a deleted post is refused like any other");
        let _ = b.timelines().await.unwrap();
        b.ping().await.unwrap();

        // Nothing B received, on either connection, names A.
        frames.extend(b.take_raw());
        b.close().await.unwrap();
        assert!(frames.iter().any(|f| f.contains("\"acks\"")));
        assert!(frames.iter().any(|f| f.contains("\"forbidden\"")));
        assert_anonymous(&frames, a_id, &a_names);

        // Reveal: the staff owner may, audited without the author's id in
        // the entry's subject; a plain member may not; outsiders learn nothing.
        let reveal =
            |seq: i64| format!("/v1/timelines/{}/events/{seq}/reveal-author", consult.get());
        let (status, r) = c
            .post(&reveal(mine.seq), token(&w.nurse), &json!({}))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(r["author"]["user_id"], a_id.get());
        assert_eq!(r["author"]["display_name"], "doctor");
        assert_eq!(r["seq"], mine.seq);
        let entries = audit(&w, "consultation.reveal");
        let ok: Vec<_> = entries.iter().filter(|e| e["outcome"] == "ok").collect();
        assert_eq!(ok.len(), 1, "{entries:?}");
        assert_eq!(ok[0]["actor_user_id"], uid(&w.nurse).get());
        assert_eq!(ok[0]["group_id"], g.get());
        assert_eq!(ok[0]["timeline_id"], consult.get());
        assert_eq!(ok[0]["detail"], format!("seq={}", mine.seq));
        assert!(ok[0]["subject_user_id"].is_null(), "{:?}", ok[0]);

        let member = refusal(
            c.post(&reveal(mine.seq), token(&w.pharmacist), &json!({}))
                .await,
        );
        assert_eq!((member.0, member.1), (Some(403), ErrorCode::Forbidden));
        let outsider = refusal(
            c.post(&reveal(mine.seq), token(&w.outsider), &json!({}))
                .await,
        );
        assert_eq!((outsider.0, outsider.1), (Some(404), ErrorCode::NotFound));
        let missing = refusal(c.post(&reveal(999), token(&w.nurse), &json!({})).await);
        assert_eq!(missing.1, ErrorCode::NotFound);
        // Outside a consultation timeline there is nothing to reveal.
        let team = refusal(
            c.post(
                &format!("/v1/timelines/{}/events/1/reveal-author", w.team.get()),
                token(&w.nurse),
                &json!({}),
            )
            .await,
        );
        assert_eq!(team.1, ErrorCode::NotFound);
        let denied = audit(&w, "consultation.reveal")
            .into_iter()
            .filter(|e| e["outcome"] == "denied")
            .count();
        assert!(denied >= 2, "refused reveals are audited too");
        assert_eq!(
            audit(&w, "consultation.reveal")
                .iter()
                .filter(|e| e["outcome"] == "ok")
                .count(),
            1,
            "a refused reveal reveals nothing"
        );
    }
}
