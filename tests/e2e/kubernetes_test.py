#!/usr/bin/env python3
"""The kubernetes sandbox runtime (docs/sandbox.md "Kubernetes"), run by the
real binary. No cluster can run on this project's machines, so `kubectl` is a
stand-in that keeps the objects it is given in a folder and "runs" a Job's
container as a local process with the environment its Secret references
resolve to: what is checked is the engine's side, what it applies (a Job
with no value in it, a NetworkPolicy, a Secret holding the task's
environment), how it reads the result, and that it deletes all three; and
that without a cluster the runtime fails closed. The manifests themselves
are checked field by field in tests/unit/sandbox/sandbox_test.cc."""

import json
import os

from smithers_e2e import E2ETest, main

# The stand-in kubectl: apply, get job/pods, logs, delete, as the runtime's
# client calls them. STATE is replaced by its folder.
KUBECTL = r'''#!/usr/bin/env python3
import json, os, subprocess, sys, tempfile
STATE = "__STATE__"
args = sys.argv[1:]
with open(os.path.join(STATE, "calls.jsonl"), "a") as f:
    f.write(json.dumps(args) + "\n")
objects_path = os.path.join(STATE, "objects.json")
objects = json.load(open(objects_path)) if os.path.exists(objects_path) else {}
def save():
    json.dump(objects, open(objects_path, "w"))
if os.path.exists(os.path.join(STATE, "down")):
    sys.stderr.write("The connection to the server localhost:8080 was refused\n")
    sys.exit(1)
if args[:3] == ["apply", "-f", "-"]:
    doc = json.load(sys.stdin)
    with open(os.path.join(STATE, "applied.json"), "w") as f:
        json.dump(doc, f)
    for item in doc["items"]:
        objects[item["kind"] + "/" + item["metadata"]["name"]] = item
        print("%s/%s created" % (item["kind"].lower(), item["metadata"]["name"]))
    save()
elif args[:2] == ["get", "job"]:
    key = "Job/" + args[2]
    if key not in objects:
        sys.stderr.write('Error from server (NotFound): jobs "%s" not found\n' % args[2])
        sys.exit(1)
    job = objects[key]
    if "ran" not in job:
        c = job["spec"]["template"]["spec"]["containers"][0]
        env = {"PATH": "/usr/bin:/bin"}
        for e in c.get("env", []):
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = objects["Secret/" + ref["name"]]["stringData"][ref["key"]]
        p = subprocess.run(c["command"], env=env, cwd=tempfile.gettempdir(),
                           capture_output=True, text=True)
        job["ran"] = {"out": p.stdout + p.stderr, "code": p.returncode}
        save()
    ok = job["ran"]["code"] == 0
    print(json.dumps({"status": {"succeeded": 1} if ok else {"failed": 1}}))
elif args[:1] == ["logs"]:
    print(objects["Job/" + args[1].split("/", 1)[1]]["ran"]["out"], end="")
elif args[:2] == ["get", "pods"]:
    name = args[3].split("=", 1)[1]
    code = objects["Job/" + name]["ran"]["code"]
    print(json.dumps({"items": [{"status": {"containerStatuses": [
        {"state": {"terminated": {"exitCode": code}}}]}}]}))
elif args[:1] == ["delete"]:
    name = args[3].split("=", 1)[1]
    for k in [k for k, v in objects.items()
              if v["metadata"].get("labels", {}).get("smithers.sh/job") == name]:
        del objects[k]
    save()
else:
    sys.stderr.write("stand-in kubectl: unexpected %r\n" % args)
    sys.exit(2)
'''

TASK = """
local outputs = smithers.outputs { r = z.object { exitCode = z.integer(), stdout = z.string(),
                                                  stderr = z.string() } }
return smithers(function(ctx)
  return Workflow { name = "kube",
    Task { id = "job", output = outputs.r, parse = "text",
           command = { "sh", "-c", ctx.input.script },
           env = { GREETING = "hello", TOKEN = { secret = "env:KUBE_TEST_TOKEN" } },
           sandbox = { runtime = "kubernetes", image = "registry.local/tools:1",
                       memoryLimit = "64m", cpuLimit = 0.5 } } }
end)
"""


class KubernetesTest(E2ETest):
    def setUp(self):
        super().setUp()
        self.state = self.path("cluster")
        os.makedirs(self.state)
        bin_dir = self.path("bin")
        os.makedirs(bin_dir)
        exe = os.path.join(bin_dir, "kubectl")
        with open(exe, "w") as f:
            f.write(KUBECTL.replace("__STATE__", self.state))
        os.chmod(exe, 0o755)
        self.env = {"PATH": bin_dir + ":" + os.environ["PATH"],
                    "KUBE_TEST_TOKEN": "tok-5f1c9a77e2"}
        self.module = self.write("kube.lua", TASK)

    def calls(self):
        with open(os.path.join(self.state, "calls.jsonl")) as f:
            return [json.loads(line) for line in f]

    def objects(self):
        with open(os.path.join(self.state, "objects.json")) as f:
            return json.load(f)

    def test_a_task_runs_as_a_job_with_its_environment_by_reference(self):
        # The pod got the secret (its length and first part; the whole value
        # would be redacted from the output).
        r = self.up(self.module, {"script": 'echo "$GREETING ${#TOKEN} ${TOKEN%%-*}"'},
                    env=self.env)
        self.assertEqual(r.code, 0, r)
        out = r.json()["outputs"]["r"]["job"]
        self.assertEqual((out["exitCode"], out["stdout"]), (0, "hello 14 tok\n"), out)
        with open(os.path.join(self.state, "applied.json")) as f:
            applied = json.load(f)
        kinds = [i["kind"] for i in applied["items"]]
        self.assertEqual(kinds, ["Secret", "NetworkPolicy", "Job"])
        secret, policy, job = applied["items"]
        # The values are in the Secret only; the Job names them.
        self.assertEqual(secret["stringData"], {"GREETING": "hello", "TOKEN": "tok-5f1c9a77e2"})
        self.assertNotIn("tok-5f1c9a77e2", json.dumps(job))
        self.assertNotIn("tok-5f1c9a77e2", json.dumps(self.calls()))
        self.assertEqual(policy["spec"]["egress"], [])
        pod = job["spec"]["template"]["spec"]
        self.assertFalse(pod["automountServiceAccountToken"])
        self.assertEqual(pod["containers"][0]["resources"]["limits"],
                         {"memory": "67108864", "cpu": "500m"})
        # Everything applied was deleted again (by its label).
        self.assertEqual(self.objects(), {})
        self.assertIn(["delete", "job,networkpolicy,secret", "-l",
                       "smithers.sh/job=" + job["metadata"]["name"], "--ignore-not-found",
                       "--wait=false"], self.calls())
        # Nothing of the secret reached the database.
        with open(self.db, "rb") as f:
            self.assertNotIn(b"tok-5f1c9a77e2", f.read())
        run_id = r.json()["runId"]
        [row] = self.run_cli("inspect", run_id, "--json").json()["sandboxes"]
        self.assertEqual((row["runtime"], row["status"], row["kind"]),
                         ("kubernetes", "finished", "command"), row)
        self.assertEqual(row["containerId"], job["metadata"]["name"])

    def test_a_failing_pod_fails_the_task_with_its_exit_code(self):
        r = self.up(self.module, {"script": "echo broken >&2; exit 3"}, env=self.env)
        self.assertEqual(r.code, 1, r)
        err = self.run_cli("inspect", r.json()["runId"], "--json").json()
        attempt = err["nodes"][0]["attempts"][0]
        self.assertEqual(attempt["error"]["code"], "COMMAND_FAILED", attempt)
        self.assertEqual(attempt["error"]["exitCode"], 3, attempt)
        self.assertEqual(self.objects(), {})

    def test_without_a_cluster_nothing_runs(self):
        open(os.path.join(self.state, "down"), "w").close()
        r = self.up(self.module, {"script": "touch " + self.path("ran")}, env=self.env)
        self.assertEqual(r.code, 1, r)
        self.assertIn("the kubernetes sandbox cannot start", r.stdout + r.stderr)
        self.assertIn("connection to the server", r.stdout + r.stderr)
        self.assertFalse(os.path.exists(self.path("ran")))
        # A Sandbox's worker or a volume needs host paths a pod cannot see.
        bad = self.write("bad.lua", TASK.replace(
            'cpuLimit = 0.5', 'cpuLimit = 0.5, pidsLimit = 10'))
        os.remove(os.path.join(self.state, "down"))
        r = self.up(bad, {"script": "true"}, env=self.env)
        self.assertEqual(r.code, 1, r)
        self.assertIn("cannot enforce pidsLimit", r.stdout + r.stderr)


if __name__ == "__main__":
    main()
