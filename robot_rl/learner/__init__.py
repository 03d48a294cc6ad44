"""The learner: the training loop over an algorithm's phases, replay from the offline and online
stores, rollouts on the twins, checkpoints, metrics and videos."""
