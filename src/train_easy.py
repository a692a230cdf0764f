"""Day 7 - collaborative filtering, step by step.

A walk-through to read from top to bottom. It loads the MovieLens 1M ratings and
splits them into train and test. It builds the user-item matrix from the training
ratings only and computes user-user cosine similarity. Then it predicts the test
ratings, evaluates them and pickles the results, printing what each step produced.

`src/train.py` runs the same computation as reusable functions (plus better
models); for the same --seed both print the same metrics for `user_cosine`.

    python src/train_easy.py [--data-dir data/ml-1m] [--seed 42] [--test-size 0.2]
"""

import argparse
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from sklearn.metrics.pairwise import cosine_similarity

from cfrec.data import DataError, ensure_dataset, load_ratings, resolve_data_dir

parser = argparse.ArgumentParser(description="Collaborative filtering, step by step (user-based, cosine).")
parser.add_argument("--data-dir", type=Path, default=None, help="default: $CF_DATA_DIR, else data/ml-1m")
parser.add_argument("--output-dir", type=Path, default=Path("outputs/easy"), help="where the pickles go")
parser.add_argument("--seed", type=int, default=42, help="random seed of the train/test split")
parser.add_argument("--test-size", type=float, default=0.2, help="share of ratings held out for testing")
parser.add_argument("--skip-checksum", action="store_true", help="accept data files that differ from the release")
args = parser.parse_args()
started = time.perf_counter()

# 1. Load the ratings ------------------------------------------------------------
# Each line of ratings.dat is "UserID::MovieID::Rating::Timestamp". The shared
# loader downloads the data if it is missing and checks every row.
data_dir = resolve_data_dir(args.data_dir)
try:
    ensure_dataset(data_dir, verify=not args.skip_checksum)
    ratings = load_ratings(data_dir / "ratings.dat")
except DataError as error:
    raise SystemExit(f"error: {error}") from None
print(f"[1] ratings: {len(ratings):,} rows, {ratings['user_id'].nunique():,} users, "
      f"{ratings['movie_id'].nunique():,} movies")
print(ratings.head(3).to_string(index=False))

# 2. Split into train and test ---------------------------------------------------
# A random permutation of the row numbers; the first 20 % become the test set.
rng = np.random.default_rng(args.seed)
order = rng.permutation(len(ratings))
n_test = int(round(len(ratings) * args.test_size))
test = ratings.iloc[np.sort(order[:n_test])].reset_index(drop=True)
train = ratings.iloc[np.sort(order[n_test:])].reset_index(drop=True)
print(f"[2] train: {len(train):,} ratings, test: {len(test):,} ratings (seed {args.seed})")

# 3. Build the user-item matrix from TRAIN only ----------------------------------
# Using test ratings here would leak the test set's ratings into the similarities.
user_ids, user_index = np.unique(train["user_id"].to_numpy(), return_inverse=True)
movie_ids, item_index = np.unique(train["movie_id"].to_numpy(), return_inverse=True)
user_items = csr_matrix(
    (train["rating"].to_numpy(np.float32), (user_index, item_index)),
    shape=(len(user_ids), len(movie_ids)),
)
sparsity = 1 - user_items.nnz / (user_items.shape[0] * user_items.shape[1])
print(f"[3] user_items: {user_items.shape[0]:,} users x {user_items.shape[1]:,} movies, "
      f"{user_items.nnz:,} ratings, sparsity {sparsity:.2%}")

# 4. User-user cosine similarity --------------------------------------------------
# Missing ratings count as 0, so two users are similar when they rated the same
# movies highly. A user is not their own neighbor: the diagonal becomes 0.
user_similarity = cosine_similarity(user_items, dense_output=True).astype(np.float32)
np.fill_diagonal(user_similarity, 0.0)
print(f"[4] user_similarity: {user_similarity.shape}, e.g. users 1-4:")
print(np.round(user_similarity[:4, :4], 3))

# 5. Predict every test rating ----------------------------------------------------
# r_hat(u, i) = sum_v sim(u, v) * r(v, i) / sum_v |sim(u, v)| over the users v who
# rated movie i in train. One matrix operation per movie, not one per rating.


def to_index(sorted_ids, raw_ids):
    """Map raw ids to matrix indices; -1 for an id that has no training rating."""
    positions = np.minimum(np.searchsorted(sorted_ids, raw_ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[positions] == raw_ids, positions, -1)


test_users = to_index(user_ids, test["user_id"].to_numpy())
test_items = to_index(movie_ids, test["movie_id"].to_numpy())
known_user, known_item = test_users >= 0, test_items >= 0

global_mean = float(user_items.data.mean())
user_counts = np.diff(user_items.indptr)
user_mean = np.asarray(user_items.sum(axis=1)).ravel() / np.maximum(user_counts, 1)
item_counts = np.bincount(user_items.indices, minlength=user_items.shape[1])
item_mean = np.asarray(user_items.sum(axis=0)).ravel() / np.maximum(item_counts, 1)

predicted = np.full(len(test), np.nan)
item_users = user_items.tocsc()  # column i lists the users who rated movie i
both = np.flatnonzero(known_user & known_item)
for item in np.unique(test_items[both]):
    rows = both[test_items[both] == item]
    raters = item_users.indices[item_users.indptr[item]:item_users.indptr[item + 1]]
    their_ratings = item_users.data[item_users.indptr[item]:item_users.indptr[item + 1]]
    weights = user_similarity[np.ix_(test_users[rows], raters)]
    denominator = np.abs(weights).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted[rows] = np.where(denominator > 0, weights @ their_ratings / denominator, np.nan)

# Cold start: a pair without an estimate falls back to the user's mean, an unknown
# user to the movie's mean, and both unknown to the global mean (src/cfrec/models/base.py).
no_estimate = known_user & known_item & np.isnan(predicted)
use_user_mean = no_estimate | (known_user & ~known_item)
use_item_mean = ~known_user & known_item
predicted[use_user_mean] = user_mean[test_users[use_user_mean]]
predicted[use_item_mean] = item_mean[test_items[use_item_mean]]
predicted[~known_user & ~known_item] = global_mean
predicted = np.clip(predicted, 1, 5)
print(f"[5] predicted {len(test):,} test ratings; fallbacks: {int((~(known_user & known_item) | no_estimate).sum())}")

one_user, one_movie = to_index(user_ids, [1])[0], to_index(movie_ids, [1193])[0]
if one_user >= 0 and one_movie >= 0:
    raters = item_users[:, one_movie].toarray().ravel() > 0
    weights = user_similarity[one_user]
    example = weights[raters] @ item_users[:, one_movie].toarray().ravel()[raters] / np.abs(weights[raters]).sum()
    print(f"    user 1, movie 1193 -> {example:.2f}")

# 6. Evaluate ------------------------------------------------------------------------
true_rating = test["rating"].to_numpy()
random_guess = np.random.default_rng(args.seed).integers(1, 6, size=len(test))
table = pd.DataFrame(
    {
        name: {
            "rmse": np.sqrt(np.mean((guess - true_rating) ** 2)),
            "mae": np.mean(np.abs(guess - true_rating)),
            "accuracy": np.mean(np.clip(np.rint(guess), 1, 5) == true_rating),
        }
        for name, guess in (
            ("random", random_guess),
            ("global_mean", np.full(len(test), global_mean)),
            ("user_cosine", predicted),
        )
    }
).T
print("[6] test metrics:")
print(table.round(4).to_string())

# 7. Pickle ------------------------------------------------------------------------
# Plain objects only (a csr_matrix, numpy arrays), so any script can load them.
args.output_dir.mkdir(parents=True, exist_ok=True)
for name, obj in (
    ("user_item_matrix.pkl", {"user_items": user_items, "user_ids": user_ids, "movie_ids": movie_ids}),
    ("user_similarity.pkl", {"user_similarity": user_similarity, "user_ids": user_ids}),
):
    temporary = args.output_dir / f".{name}.tmp"
    with open(temporary, "wb") as file:
        pickle.dump(obj, file, protocol=pickle.HIGHEST_PROTOCOL)
    temporary.replace(args.output_dir / name)
print(f"[7] wrote {args.output_dir}/user_item_matrix.pkl and user_similarity.pkl "
      f"in {time.perf_counter() - started:.1f} s")
print(f"accuracy user_cosine: {table.loc['user_cosine', 'accuracy']:.4f}")
