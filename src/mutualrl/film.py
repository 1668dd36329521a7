"""The FiLM student: BabyAI's reference architecture, sized for a CPU (the default `student`)."""

from __future__ import annotations

import torch
from torch import nn

from mutualrl.envs import MISSION_VOCAB
from mutualrl.student import NUM_COLORS, NUM_OBJECTS, NUM_STATES, Student, distinct_rows
from mutualrl.subgoals import SUBGOAL_DIM


class FiLMBlock(nn.Module):
    """A 3x3 convolution whose channels are scaled and shifted by the conditioning vector (FiLM,
    Perez et al. 2018), with a residual connection where the shapes allow."""

    def __init__(self, channels_in: int, channels: int, cond_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * channels)
        self.residual = channels_in == channels

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(cond)[..., None, None].chunk(2, dim=1)
        y = torch.relu(self.conv(x) * (1 + gamma) + beta)
        return x + y if self.residual else y


class FiLMActorCritic(Student):
    """BabyAI's reference student, sized for a CPU: a GRU reads the mission's words in order;
    FiLM-conditioned convolutions over the 7x7 cell embeddings see where things are. Before them,
    `match_heads` planes score every cell against queries read from the mission (cell . query): a
    small attention that can mark "the red ball" at once, where FiLM's per-channel scales must
    first learn to combine a colour channel and a type channel (on GoToLocal it halves the frames
    to 0.9 or better; docs/results.md). With subgoal advice the
    subgoal's mask is an input plane of the grid and its verb joins the mission in the conditioning
    vector."""

    architecture = "film"

    def __init__(self, num_actions: int, hidden: int = 64, cell_dim: int = 8, advice: str = "action",
                 memory: int = 0, channels: int = 16, mission_dim: int = 32, match_heads: int = 4):
        super().__init__()
        self._advice_parts(num_actions, advice, cell_dim, mission_dim, query_cells=True)
        self.object_emb = nn.Embedding(NUM_OBJECTS, cell_dim)
        self.color_emb = nn.Embedding(NUM_COLORS, cell_dim)
        self.state_emb = nn.Embedding(NUM_STATES, cell_dim)
        self.direction_emb = nn.Embedding(4, 8)
        self.word_emb = nn.Embedding(len(MISSION_VOCAB) + 1, 16, padding_idx=len(MISSION_VOCAB))
        self.reader = nn.GRU(16, mission_dim, batch_first=True)
        self._readings: dict[bytes, torch.Tensor] = {}  # mission -> its reading, while acting
        self._readings_of: list[torch.Tensor] = []  # a copy of the reader's weights those readings were made with
        subgoals = advice == "subgoal"
        cond_dim = mission_dim + (SUBGOAL_DIM - 49 if subgoals else 0)  # the verb and where its object lies
        self.match_heads = match_heads
        if match_heads:  # per cell and head: how well it answers the mission's query (cell . query(mission))
            self.match_query = nn.Linear(mission_dim, match_heads * cell_dim)
        self.blocks = nn.ModuleList([FiLMBlock(cell_dim + int(subgoals) + match_heads, channels, cond_dim),
                                     FiLMBlock(channels, channels, cond_dim)])
        rest = 0 if subgoals else self.advice_dim  # action advice joins after the convolutions
        self.trunk = nn.Sequential(nn.Linear(channels * 49 + 8 + rest, hidden), nn.Tanh())
        self._heads(hidden, num_actions, memory)
        self._memory_part(hidden, memory)

    def read(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        missions, row_mission = distinct_rows(obs["mission"])  # each mission read once, not at every step
        reading = self._read_words if torch.is_grad_enabled() else self._recall_reading
        return self._cells(obs["image"]), reading(missions)[row_mission]

    def _read_words(self, missions: torch.Tensor) -> torch.Tensor:
        """The GRU's state after each mission's last word (B, mission_dim)."""
        lengths = (missions >= 0).sum(1)
        words = missions[:, : max(1, int(lengths.max()))]  # word ids, -1 = padding (read to the longest only)
        states, _ = self.reader(self.word_emb(words.masked_fill(words < 0, len(MISSION_VOCAB))))
        last = lengths.clamp(min=1) - 1  # the state after the last word (padding comes after it)
        return states[torch.arange(len(words), device=words.device), last]

    def _recall_reading(self, missions: torch.Tensor) -> torch.Tensor:
        """`_read_words` without a gradient, each mission read once while the reader's weights stay
        as they are (an episode's mission is read again at each of its steps while acting)."""
        weights = [self.word_emb.weight, *self.reader.parameters()]
        if len(weights) != len(self._readings_of) or not all(map(torch.equal, weights, self._readings_of)):
            self._readings, self._readings_of = {}, [w.detach().clone() for w in weights]  # an update changed them
        keys = [row.tobytes() for row in missions.cpu().numpy()]
        unread = [i for i, key in enumerate(keys) if key not in self._readings]  # (the missions are distinct)
        if unread:
            self._readings.update(zip((keys[i] for i in unread), self._read_words(missions[unread])))
        return torch.stack([self._readings[key] for key in keys])

    def _trunk(self, cells, direction, mission, advice):
        grid = cells.permute(0, 3, 1, 2)  # (B, cell_dim, 7, 7)
        if self.match_heads:
            query = self.match_query(mission).view(len(mission), self.match_heads, -1)
            grid = torch.cat([grid, torch.einsum("bdhw,bkd->bkhw", grid, query)], 1)
        if self.advice_kind == "subgoal":
            grid = torch.cat([grid, advice[:, :49].view(-1, 1, 7, 7)], 1)
            cond, rest = torch.cat([mission, advice[:, 49:]], -1), []
        else:
            cond, rest = mission, [advice]
        grid = grid.contiguous(memory_format=torch.channels_last)  # (measured: halves the convolutions' time on a CPU)
        for block in self.blocks:
            grid = block(grid, cond)
        return self.trunk(torch.cat([grid.flatten(1), self.direction_emb(direction), *rest], -1))
