//! Step 2, commit: from the first block of the validator-commit window until the block at
//! which the reveal window opens, post `commitment_data(run, commitment)` on chain and publish a
//! `validator-commit` record. Only an inclusion before the reveal-open block counts
//! (`tally_protocol::rules::counting_commitment`); past it the node does not commit at all.

use crate::machine::Machine;
use crate::types::*;
use parity_scale_codec::Encode;
use tally_protocol::payload::Commit;
use tally_protocol::rules::{commitment_blocks, commitment_data};
use tally_protocol::Kind;

impl Machine {
    pub(crate) fn step_commit(&mut self, run: u64, head: u64, out: &mut Vec<Effect>) {
        let Some(clock) = self.clock() else { return };
        let (from, to) = commitment_blocks(&clock, &self.cfg.windows, run);
        if head < from || head >= to {
            return;
        }
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        if st.step != Some(Step::Scored) || st.committing {
            return;
        }
        let Some(r) = &st.report else { return };
        let h = r.commitment();
        st.committing = true;
        out.push(Effect::PostCommitment {
            run,
            data: commitment_data(run, &h),
        });
        out.push(Effect::Publish {
            kind: Kind::ValidatorCommit,
            run,
            payload: Commit(h).encode(),
        });
    }

    pub(crate) fn on_committed(
        &mut self,
        run: u64,
        result: Result<u64, String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        if !st.committing {
            return;
        }
        st.committing = false;
        if result.is_ok() && st.step == Some(Step::Scored) {
            st.step = Some(Step::Committed);
            out.push(Effect::Persist(Persist::Step {
                run,
                step: Step::Committed,
            }));
        }
    }
}
