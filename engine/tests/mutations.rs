//! Each mutation switch breaks exactly its rule: the same scenario passes without it and
//! shows the violation with it. Run with `cargo test -p ringraft --features mutations`.
#![cfg(feature = "mutations")]

mod interaction;

use interaction::Env;

fn run(env: &mut Env, script: &str) -> String {
    let mut out = String::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.push_str(&env.run(line));
    }
    out
}

/// Figure 8: with the mutation, 2/2 of an old term commits by counting replicas.
/// The `add-nodes` argument that switches `mutation` on; none for the unbroken core.
fn mutation_arg(mutation: &str) -> String {
    if mutation.is_empty() {
        String::new()
    } else {
        format!("mutation={mutation}")
    }
}

fn figure8(mutation: &str) -> String {
    let m = mutation_arg(mutation);
    let mut env = Env::default();
    let mut script = format!("add-nodes 5 batch=1 {m}\n");
    for (n, log) in [(1, "1,2"), (2, "1,2"), (3, "1"), (4, "1"), (5, "1,3")] {
        script.push_str(&format!(
            "restart {n} term=3 log={log} commit=1 batch=1 {m}\n"
        ));
    }
    script.push_str(
        "elapse 20\npartition 1 / 2 5\ncampaign 1\n\
         process 1\ndeliver\nprocess 3 4\ndeliver\nprocess 1\ndeliver\nprocess 3 4\ndeliver\n\
         process 1\ndeliver\nprocess 3 4\ndeliver\nprocess 1\ndeliver\nprocess 3 4\ndeliver\n\
         process 1\ndrop 3 4\n",
    );
    run(&mut env, &script);
    env.run("status 1")
}

#[test]
fn count_old_term_toward_commit() {
    assert!(figure8("").contains("commit=1 "));
    assert!(
        figure8("count-old-term").contains("commit=2 "),
        "{}",
        figure8("count-old-term")
    );
}

/// Node 3 misses committed entries, then campaigns without pre-vote: only the mutation lets it
/// collect votes and win with a log that lacks committed entries.
fn stale_candidate(mutation: &str) -> String {
    let m = mutation_arg(mutation);
    let mut env = Env::default();
    let script = format!(
        "add-nodes 3 prevote=false {m}\ncampaign 1\nstabilize\npartition 3 / 1 2\n\
         propose 1 a\nstabilize\nheal\npartition 1 / 2 3\nelapse 30\ncampaign 3\n\
         process 3\ndeliver\nprocess 2\ndeliver\n"
    );
    let out = run(&mut env, &script);
    let status = env.run("status 3");
    let _ = out;
    status
}

#[test]
fn vote_without_log_check() {
    assert!(stale_candidate("").contains("Candidate"));
    let s = stale_candidate("vote-without-log-check");
    assert!(s.contains("Leader"), "{s}");
}

/// A new leader whose heartbeat round is acknowledged while its no-op is not yet committed.
fn early_lease_read(mutation: &str) -> String {
    let m = mutation_arg(mutation);
    let mut env = Env::default();
    let script = format!(
        "add-nodes 3 {m}\ncampaign 1\nprocess 1\ndeliver\nprocess 2 3\ndeliver\nprocess 1\n\
         deliver\nprocess 2 3\ndeliver\nprocess 1\ndrop 2 3\ntick-heartbeat 1\nprocess 1\n\
         deliver\nprocess 2 3\ndeliver\n"
    );
    run(&mut env, &script);
    env.run("read 1 lease 7");
    env.run("process 1")
}

#[test]
fn lease_read_before_noop_commit() {
    assert!(!early_lease_read("").contains("read ready"));
    let out = early_lease_read("lease-before-noop");
    assert!(out.contains("read ready: id=7"), "{out}");
}

fn follower_ack(mutation: &str) -> String {
    let m = mutation_arg(mutation);
    let mut env = Env::default();
    run(
        &mut env,
        &format!("add-nodes 3 {m}\ncampaign 1\nstabilize\npropose 1 x\nprocess 1\ndeliver"),
    );
    env.run("ready 2")
}

#[test]
fn ack_append_before_persist() {
    assert!(follower_ack("").contains("send after persist: 2->1 t1 AppResp ok index=2"));
    let out = follower_ack("ack-before-persist");
    assert!(out.contains("  send: 2->1 t1 AppResp ok index=2"), "{out}");
}

fn oversized_proposal(mutation: &str) -> String {
    let m = mutation_arg(mutation);
    let mut env = Env::default();
    run(
        &mut env,
        &format!("add-nodes 1 entry=8 {m}\ncampaign 1\nstabilize"),
    );
    env.run("propose-big 1 9")
}

#[test]
fn accept_oversized_entries() {
    let out = oversized_proposal("");
    assert!(out.contains("TooLarge { len: 9, max: 8 }"), "{out}");
    let out = oversized_proposal("oversized");
    assert!(out.contains("proposed at i2"), "{out}");
    // The storage then refuses the entry: the node would stop.
    let mut env = Env::default();
    run(
        &mut env,
        "add-nodes 1 entry=8 mutation=oversized\ncampaign 1\nstabilize",
    );
    env.run("propose-big 1 9");
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.run("process 1")));
    assert!(stopped.is_err(), "the oversized entry reached the storage");
}
