"""Networks of the learner: the batched critic ensemble, the tanh-Gaussian actor and the
observation encoders (state and cameras)."""
from robot_rl.nets.actor import TanhGaussianActor
from robot_rl.nets.critic import CriticEnsemble
from robot_rl.nets.encoders import ConvEncoder, ObservationEncoder, random_shift
from robot_rl.nets.ensemble import EnsembleLinear, EnsembleMLP, mlp

__all__ = ["ConvEncoder", "CriticEnsemble", "EnsembleLinear", "EnsembleMLP", "ObservationEncoder",
           "TanhGaussianActor", "mlp", "random_shift"]
