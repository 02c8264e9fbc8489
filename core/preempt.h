// core/preempt.h: preemption notices. SLURM sends SIGTERM before killing a job (and, with
// `--signal=USR1@SECONDS`, SIGUSR1 ahead of the time limit); torchrun forwards SIGTERM to its
// workers. install_stop_signals() turns both into a flag that long loops poll at a safe point
// (the trainer: after a step, all ranks agreeing), instead of dying mid-write.
#pragma once

namespace causvid::core {

// Installs the SIGTERM / SIGUSR1 handlers (idempotent). Until then the signals keep their
// default action (termination).
void install_stop_signals();
// The signal that requested a stop (SIGTERM / SIGUSR1), or 0.
int stop_signal();
// Clears the request (tests; a loop that handled it).
void clear_stop_request();
// Seconds since the first stop request (0 when none).
double seconds_since_stop_request();

}  // namespace causvid::core
