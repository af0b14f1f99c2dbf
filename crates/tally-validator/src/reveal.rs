//! Step 3, reveal: inside the run's validator-reveal window (never before its first block),
//! serve the committed report over HTTP and publish it as a `validator-reveal` record.

use crate::machine::Machine;
use crate::types::*;
use tally_protocol::rules::{reveal_close_block, reveal_open_block};
use tally_protocol::Kind;

impl Machine {
    pub(crate) fn step_reveal(&mut self, run: u64, head: u64, out: &mut Vec<Effect>) {
        let Some(clock) = self.clock() else { return };
        let w = self.cfg.windows;
        if head < reveal_open_block(&clock, &w, run) || head >= reveal_close_block(&clock, &w, run)
        {
            return;
        }
        let Some(st) = self.runs.get_mut(&run) else {
            return;
        };
        if st.step != Some(Step::Committed) {
            return;
        }
        let Some(wire) = st.wire.clone() else { return };
        st.step = Some(Step::Revealed);
        out.push(Effect::Serve {
            run,
            wire: wire.clone(),
        });
        out.push(Effect::Publish {
            kind: Kind::ValidatorReveal,
            run,
            payload: wire,
        });
        out.push(Effect::Persist(Persist::Step {
            run,
            step: Step::Revealed,
        }));
    }
}
