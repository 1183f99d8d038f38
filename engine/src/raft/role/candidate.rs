//! Elections: pre-vote, vote, and answering vote requests (Raft paper 5.2, thesis 9.6).

use crate::raft::config::Mutation;
use crate::raft::core::Core;
use crate::raft::leader_state::RoleState;
use crate::raft::message::{Message, MessageBody};
use crate::raft::quorum::VoteResult;
use crate::raft::rules;
use crate::raft::types::{NodeId, Role, Term};

impl Core {
    /// Starts an election: a pre-vote round first when configured, unless this is a
    /// leadership transfer (the old leader asked us to take over).
    pub(crate) fn campaign(&mut self, transfer: bool) {
        if self.cfg.pre_vote && !transfer {
            self.become_pre_candidate();
        } else {
            self.become_candidate(transfer);
        }
    }

    fn become_pre_candidate(&mut self) {
        // Replacing a leader's role here would drop its state without failing its reads.
        assert!(self.role() != Role::Leader, "a leader does not campaign");
        // The term stays: a pre-vote that fails disturbs no one (thesis 9.6).
        self.role = RoleState::PreCandidate;
        self.leader_id = None;
        self.reset_election_timer();
        self.tracker.reset_votes();
        if self.tracker.record_vote(self.id, true) == VoteResult::Won {
            self.become_candidate(false);
            return;
        }
        self.request_votes(true, false);
    }

    fn become_candidate(&mut self, transfer: bool) {
        assert!(self.role() != Role::Leader, "a leader does not campaign");
        self.term = Term(self.term.0 + 1);
        self.vote = Some(self.id);
        self.role = RoleState::Candidate;
        self.leader_id = None;
        self.reset_election_timer();
        self.tracker.reset_votes();
        // Our own vote counts now; the requests leave only once term and vote are durable, so
        // no peer can answer before then (single-voter clusters have no peer to ask).
        if self.tracker.record_vote(self.id, true) == VoteResult::Won {
            self.become_leader();
            return;
        }
        self.request_votes(false, transfer);
    }

    fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        let term = if pre_vote {
            Term(self.term.0 + 1)
        } else {
            self.term
        };
        let body = MessageBody::RequestVote {
            pre_vote,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer,
        };
        let voters: Vec<NodeId> = self.membership().members().into_iter().collect();
        for to in voters {
            if to == self.id || !self.membership().is_voter(to) {
                continue;
            }
            let msg = Message {
                from: self.id,
                to,
                term,
                body: body.clone(),
            };
            self.send_msg(msg);
        }
    }

    /// Answers a vote request; the decision is [`rules::grants_vote`].
    pub(crate) fn handle_request_vote(&mut self, m: Message) {
        let MessageBody::RequestVote {
            pre_vote,
            last_index,
            last_term,
            ..
        } = m.body
        else {
            unreachable!("dispatched on RequestVote");
        };
        let req = rules::VoteRequest {
            candidate: m.from,
            pre_vote,
            term_ahead: m.term > self.term,
            log_up_to_date: self.log.is_up_to_date(last_index, last_term),
        };
        let off = self.mutated(Mutation::VoteWithoutLogCheck);
        let granted = rules::grants_vote(self.vote, self.leader_id.is_some(), &req, off);
        if granted && !pre_vote {
            assert!(
                self.vote.is_none() || self.vote == Some(m.from),
                "invariant: one vote per term"
            );
            self.vote = Some(m.from);
            self.election_elapsed = 0;
        }
        // A granted pre-vote answers in the candidate's future term, so it is not mistaken for
        // a stale message; a refusal carries our term so a stale candidate catches up.
        let term = if pre_vote && granted {
            m.term
        } else {
            self.term
        };
        let msg = Message {
            from: self.id,
            to: m.from,
            term,
            body: MessageBody::RequestVoteResponse { pre_vote, granted },
        };
        self.send_msg(msg);
    }

    pub(crate) fn handle_vote_response(&mut self, from: NodeId, pre_vote: bool, granted: bool) {
        let expected = if pre_vote {
            Role::PreCandidate
        } else {
            Role::Candidate
        };
        if self.role() != expected {
            return;
        }
        match self.tracker.record_vote(from, granted) {
            VoteResult::Pending => {}
            VoteResult::Won if pre_vote => self.become_candidate(false),
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None),
        }
    }
}
