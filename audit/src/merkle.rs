//! RFC 9162 §2.1 Merkle tree math: hashes, roots, inclusion and consistency
//! proofs, and their verification. Pure: no IO, no gRPC. Stored nodes are
//! reached through a lookup the caller passes in.
//!
//! A *node* `(level, index)` is the root of the perfect subtree over leaves
//! `[index << level, (index + 1) << level)`; level 0 holds the leaf hashes.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof does not verify, or cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree sizes {first} and {second} must satisfy 0 < first <= second")]
    BadSizes { first: u64, second: u64 },
    #[error("proof has {got} hashes, expected {want}")]
    WrongLength { got: usize, want: usize },
    #[error("proof does not lead to the expected root")]
    Mismatch,
}

/// SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (n > 1).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[start:end]) for a range the RFC's recursion produces (its start is
/// aligned to the perfect subtrees it splits into), from stored nodes.
pub fn range_hash<E>(node: &mut impl FnMut(u32, u64) -> Result<Hash, E>, start: u64, end: u64) -> Result<Hash, E> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return node(level, start >> level);
    }
    let k = split(n);
    let left = range_hash(node, start, start + k)?;
    let right = range_hash(node, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root of a tree of `size` leaves (the empty root for 0).
pub fn root<E>(node: &mut impl FnMut(u32, u64) -> Result<Hash, E>, size: u64) -> Result<Hash, E> {
    if size == 0 {
        Ok(empty_root())
    } else {
        range_hash(node, 0, size)
    }
}

/// The inclusion proof PATH(index, D[0:size]) of RFC 9162 §2.1.3.1.
pub fn inclusion_proof<E>(
    node: &mut impl FnMut(u32, u64) -> Result<Hash, E>,
    index: u64,
    size: u64,
) -> Result<Result<Vec<Hash>, ProofError>, E> {
    if index >= size {
        return Ok(Err(ProofError::IndexOutOfRange { index, size }));
    }
    let mut proof = Vec::new();
    let (mut start, mut end, m) = (0, size, index);
    // Walk down from the root, collecting the sibling of each step; the RFC
    // lists them leaf first, so reverse at the end.
    while end - start > 1 {
        let k = split(end - start);
        if m < start + k {
            proof.push(range_hash(node, start + k, end)?);
            end = start + k;
        } else {
            proof.push(range_hash(node, start, start + k)?);
            start += k;
        }
    }
    proof.reverse();
    Ok(Ok(proof))
}

/// The consistency proof PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1.
pub fn consistency_proof<E>(
    node: &mut impl FnMut(u32, u64) -> Result<Hash, E>,
    first: u64,
    second: u64,
) -> Result<Result<Vec<Hash>, ProofError>, E> {
    if first == 0 || first > second {
        return Ok(Err(ProofError::BadSizes { first, second }));
    }
    let mut proof = Vec::new();
    let (mut start, mut end, mut m, mut complete) = (0, second, first, true);
    // SUBPROOF(m, D[start:end], complete), iteratively; siblings are pushed
    // root first and reversed at the end.
    loop {
        let n = end - start;
        if m == n {
            if !complete {
                proof.push(range_hash(node, start, end)?);
            }
            break;
        }
        let k = split(n);
        if m <= k {
            proof.push(range_hash(node, start + k, end)?);
            end = start + k;
        } else {
            proof.push(range_hash(node, start, start + k)?);
            start += k;
            m -= k;
            complete = false;
        }
    }
    proof.reverse();
    Ok(Ok(proof))
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: inclusion_len(index, size),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: inclusion_len(index, size),
        });
    }
    if &r == root { Ok(()) } else { Err(ProofError::Mismatch) }
}

fn inclusion_len(index: u64, size: u64) -> usize {
    let (mut fn_, mut sn, mut len) = (index, size - 1, 0);
    while sn != 0 {
        if fn_ & 1 == 0 && fn_ == sn {
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        }
        fn_ >>= 1;
        sn >>= 1;
        len += 1;
    }
    len
}

/// Verifies a consistency proof between two roots (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first == 0 || first > second {
        return Err(ProofError::BadSizes { first, second });
    }
    if first == second {
        return if proof.is_empty() && first_root == second_root {
            Ok(())
        } else if !proof.is_empty() {
            Err(ProofError::WrongLength {
                got: proof.len(),
                want: 0,
            })
        } else {
            Err(ProofError::Mismatch)
        };
    }
    // If first is an exact power of two, the first root is the proof's implicit first element.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((head, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength { got: 0, want: 1 });
    };
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*head, *head);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: proof.len() - 1,
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    if &fr == first_root && &sr == second_root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest
/// first. Appending a leaf returns the nodes it completes, to be stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Perfect subtree roots, left to right; one per set bit of `size`.
    roots: Vec<Hash>,
}

impl Frontier {
    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes.
    pub fn load<E>(node: &mut impl FnMut(u32, u64) -> Result<Hash, E>, size: u64) -> Result<Frontier, E> {
        let mut roots = Vec::new();
        let mut start = 0u64;
        for level in (0..64).rev() {
            if size & (1 << level) != 0 {
                roots.push(node(level, start >> level)?);
                start += 1 << level;
            }
        }
        Ok(Frontier { size, roots })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the perfect subtrees, left to right (one per set bit of the size).
    pub fn roots(&self) -> &[Hash] {
        &self.roots
    }

    /// The frontier of a tree of `size` leaves with these subtree `roots`,
    /// as [`Frontier::roots`] gave them; `None` if they cannot be.
    pub fn from_roots(size: u64, roots: Vec<Hash>) -> Option<Frontier> {
        (roots.len() == size.count_ones() as usize).then_some(Frontier { size, roots })
    }

    /// Appends a leaf hash; `store` receives every node completed, leaf included.
    pub fn push(&mut self, leaf: Hash, mut store: impl FnMut(u32, u64, &Hash)) {
        let mut hash = leaf;
        let mut index = self.size;
        let mut level = 0;
        store(level, index, &hash);
        while index & 1 == 1 {
            // Invariant: an odd index means a left sibling of this level sits on the frontier.
            let Some(left) = self.roots.pop() else { break };
            hash = node_hash(&left, &hash);
            index >>= 1;
            level += 1;
            store(level, index, &hash);
        }
        self.roots.push(hash);
        self.size += 1;
    }

    /// The root hash of the tree so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.roots.iter().rev();
        let Some(last) = iter.next() else { return empty_root() };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, convert::Infallible};

    use proptest::prelude::*;

    use super::*;

    // Known answers from transparency-dev/merkle, testonly/constants.go
    // (LeafInputs, NodeHashes, RootHashes) and testonly/reference_test.go
    // (TestRefInclusionProof, TestRefConsistencyProof): the RFC 6962 reference
    // vectors, unchanged by RFC 9162.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    const INCLUSION: &[(u64, u64, &[&str])] = &[
        (0, 1, &[]),
        (
            0,
            2,
            &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
        ),
        (
            1,
            2,
            &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    const CONSISTENCY: &[(u64, u64, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// A tree in memory: every node stored, as the audit log stores them.
    #[derive(Default)]
    struct Tree {
        frontier: Frontier,
        nodes: HashMap<(u32, u64), Hash>,
    }

    impl Tree {
        fn with_leaves(leaves: impl IntoIterator<Item = Vec<u8>>) -> Tree {
            let mut t = Tree::default();
            for leaf in leaves {
                let nodes = &mut t.nodes;
                t.frontier.push(leaf_hash(&leaf), |l, i, h| {
                    nodes.insert((l, i), *h);
                });
            }
            t
        }

        fn lookup(&self) -> impl FnMut(u32, u64) -> Result<Hash, Infallible> + '_ {
            |l, i| Ok(self.nodes[&(l, i)])
        }
    }

    fn kat_tree() -> Tree {
        Tree::with_leaves(LEAVES.iter().map(|l| hex::decode(l).unwrap()))
    }

    #[test]
    fn known_roots() {
        for (size, want) in ROOTS.iter().enumerate() {
            let t = Tree::with_leaves(LEAVES[..size].iter().map(|l| hex::decode(l).unwrap()));
            assert_eq!(hex::encode(t.frontier.root()), *want, "frontier root of {size}");
            let full = kat_tree();
            assert_eq!(
                hex::encode(root(&mut full.lookup(), size as u64).unwrap()),
                *want,
                "stored root of {size}"
            );
        }
    }

    #[test]
    fn known_inclusion_proofs() {
        let t = kat_tree();
        for (index, size, want) in INCLUSION {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let got = inclusion_proof(&mut t.lookup(), *index, *size).unwrap().unwrap();
            assert_eq!(got, want, "PATH({index}, {size})");
            let leaf = leaf_hash(&hex::decode(LEAVES[*index as usize]).unwrap());
            verify_inclusion(&leaf, *index, *size, &got, &h(ROOTS[*size as usize])).unwrap();
        }
    }

    #[test]
    fn known_consistency_proofs() {
        let t = kat_tree();
        for (first, second, want) in CONSISTENCY {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let got = consistency_proof(&mut t.lookup(), *first, *second).unwrap().unwrap();
            assert_eq!(got, want, "PROOF({first}, {second})");
            verify_consistency(
                *first,
                *second,
                &h(ROOTS[*first as usize]),
                &h(ROOTS[*second as usize]),
                &got,
            )
            .unwrap();
        }
    }

    fn flip(proof: &[Hash], which: usize, bit: u8) -> Vec<Hash> {
        let mut p = proof.to_vec();
        let i = which % p.len();
        p[i][usize::from(bit) % 32] ^= 1 << (bit % 8);
        p
    }

    #[test]
    fn every_proof_of_every_tree_up_to_300_verifies_and_tampering_fails() {
        let t = Tree::with_leaves((0u32..300).map(|i| i.to_be_bytes().to_vec()));
        let roots: Vec<Hash> = (0..=300).map(|n| root(&mut t.lookup(), n).unwrap()).collect();
        for size in 1..=300u64 {
            let r = &roots[size as usize];
            // Checking every index of every size is 45,150 proofs: fast enough, and exhaustive.
            for index in 0..size {
                let leaf = leaf_hash(&(index as u32).to_be_bytes());
                let proof = inclusion_proof(&mut t.lookup(), index, size).unwrap().unwrap();
                verify_inclusion(&leaf, index, size, &proof, r).unwrap();
                if !proof.is_empty() {
                    assert!(
                        verify_inclusion(&leaf, index, size, &flip(&proof, index as usize, size as u8), r).is_err()
                    );
                }
                if size > 1 {
                    assert!(
                        verify_inclusion(&leaf, (index + 1) % size, size, &proof, r).is_err(),
                        "wrong index {index}/{size}"
                    );
                }
                if size < 300 {
                    let bigger = &roots[size as usize + 1];
                    assert!(
                        verify_inclusion(&leaf, index, size + 1, &proof, bigger).is_err(),
                        "wrong size"
                    );
                }
            }
            for first in 1..=size {
                let proof = consistency_proof(&mut t.lookup(), first, size).unwrap().unwrap();
                let fr = &roots[first as usize];
                verify_consistency(first, size, fr, r, &proof).unwrap();
                if !proof.is_empty() {
                    assert!(verify_consistency(first, size, fr, r, &flip(&proof, first as usize, size as u8)).is_err());
                }
                if first < size {
                    assert!(verify_consistency(first + 1, size, &roots[first as usize + 1], r, &proof).is_err());
                    assert!(verify_consistency(first, size - 1, fr, &roots[size as usize - 1], &proof).is_err());
                }
            }
        }
    }

    proptest! {
        #[test]
        fn frontier_matches_a_full_recomputation(n in 0u64..2000) {
            let t = Tree::with_leaves((0..n).map(|i| i.to_le_bytes().to_vec()));
            prop_assert_eq!(t.frontier.root(), root(&mut t.lookup(), n).unwrap());
            let loaded = Frontier::load(&mut t.lookup(), n).unwrap();
            prop_assert_eq!(loaded, t.frontier.clone());
        }
    }
}
