import sys, time, torch
from torch.profiler import profile, ProfilerActivity
from jdx import checkpoint
from jdx.train import TrainConfig, build_model, build_objective, EMA
from jdx.augment import augment
torch.manual_seed(0)
m = checkpoint.load("checkpoints/fmnist-joint", "cpu")
cfg = TrainConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in m.info.training["config"].items() if k in TrainConfig.__dataclass_fields__})
model = build_model(cfg, 10).train(); obj = build_objective(cfg, model); ema = EMA(model, 0.999)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
imgs = (torch.rand(60000, 1, 28, 28) * 255).to(torch.uint8); labels = torch.randint(0, 10, (60000,))
B = 128
def step(i):
    idx = torch.randint(0, 60000, (B,)); x0 = imgs[idx].float() / 127.5 - 1
    with torch.profiler.record_function("augment"):
        xl = augment(x0)
    with torch.profiler.record_function("forward"):
        out = obj(x0, xl, labels[idx])
    opt.zero_grad(set_to_none=True)
    with torch.profiler.record_function("backward"):
        out.loss.backward()
    with torch.profiler.record_function("clip+opt"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    with torch.profiler.record_function("ema"):
        ema.update(model, i)
step(0)
t0 = time.perf_counter()
for i in range(2): step(i)
print("step s", (time.perf_counter() - t0) / 2)
with profile(activities=[ProfilerActivity.CPU]) as prof:
    step(3)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=12))
