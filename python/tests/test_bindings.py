import unittest

from cairn_worker.bindings import Binding, Env


class EnvTest(unittest.TestCase):
    def test_vars_and_bindings_by_attribute_and_key(self):
        env = Env(None, [{"name": "checkout", "binding": "CHECKOUT"}], {"API_KEY": "k", "LIMITS": {"max": 3}})
        self.assertEqual(env.API_KEY, "k")
        self.assertEqual(env["LIMITS"], {"max": 3})
        self.assertIsInstance(env.CHECKOUT, Binding)
        self.assertIn("API_KEY", env)
        self.assertNotIn("MISSING", env)
        with self.assertRaises(KeyError):
            env["MISSING"]
        with self.assertRaises(AttributeError):
            env.MISSING


if __name__ == "__main__":
    unittest.main()
