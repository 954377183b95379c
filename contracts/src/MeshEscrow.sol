// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MeshController} from "./MeshController.sol";

/// @title MeshOps job escrow
/// @notice A client locks a job's price; k oracles attest, in numbered rounds, which nodes did
/// verified work and how much each earned; those nodes withdraw their share. What was not
/// attested goes back to the client when the job completes (a final attestation), when the
/// client cancels it, or when anyone closes it after its deadline. Attested shares stay
/// withdrawable after the job closes: work done is paid even if the client cancels later.
contract MeshEscrow {
    using SafeERC20 for IERC20;

    enum Status {
        None,
        Open,
        Completed,
        Cancelled,
        Expired
    }

    struct Job {
        address client;
        uint64 deadline;
        Status status;
        uint32 rounds;
        uint256 price;
        uint256 attested;
    }

    IERC20 public immutable token;
    MeshController public immutable controller;
    uint256 public jobCount;

    mapping(uint256 jobId => Job) private _jobs;

    /// @notice Attested to `node` for `jobId` and not withdrawn yet.
    mapping(uint256 jobId => mapping(address node => uint256)) public owed;

    event JobCreated(uint256 indexed jobId, address indexed client, uint256 price, uint64 deadline);
    event WorkAttested(
        uint256 indexed jobId, uint256 round, address[] nodes, uint256[] amounts, bool final_
    );
    event Withdrawn(uint256 indexed jobId, address indexed node, uint256 amount);
    event JobClosed(uint256 indexed jobId, Status status, uint256 refund);

    error ZeroPrice();
    error DeadlineInPast(uint64 deadline, uint256 timestamp);
    error UnknownJob(uint256 jobId);
    error JobNotOpen(uint256 jobId, Status status);
    error NotJobClient(uint256 jobId, address caller);
    error JobNotExpired(uint256 jobId, uint64 deadline);
    error StaleAttestation(uint256 jobId, uint256 round, uint256 expected);
    error LengthMismatch(uint256 nodes, uint256 amounts);
    error InvalidNodeAddress(address node);
    error AttestationExceedsEscrow(uint256 jobId, uint256 requested, uint256 available);
    error NothingToWithdraw(uint256 jobId, address node);

    constructor(IERC20 token_, MeshController controller_) {
        token = token_;
        controller = controller_;
    }

    /// @notice Lock `price` tokens (approve this contract first) for a job open until `deadline`.
    function createJob(uint256 price, uint64 deadline) external returns (uint256 jobId) {
        if (price == 0) revert ZeroPrice();
        if (deadline <= block.timestamp) revert DeadlineInPast(deadline, block.timestamp);
        jobId = ++jobCount;
        _jobs[jobId] = Job(msg.sender, deadline, Status.Open, 0, price, 0);
        token.safeTransferFrom(msg.sender, address(this), price);
        emit JobCreated(jobId, msg.sender, price, deadline);
    }

    function job(uint256 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    /// @notice The digest each oracle signs (EIP-191) for attestation round `round` of a job.
    function attestationDigest(
        uint256 jobId,
        uint256 round,
        bool final_,
        address[] calldata nodes,
        uint256[] calldata amounts
    ) public view returns (bytes32) {
        return keccak256(
            abi.encodePacked(block.chainid, address(this), jobId, round, final_, nodes, amounts)
        );
    }

    /// @notice Credit `amounts` to `nodes` with k oracle signatures; rounds are numbered from 0
    /// so a signed attestation counts once. A final round completes the job and refunds the rest.
    function attest(
        uint256 jobId,
        uint256 round,
        bool final_,
        address[] calldata nodes,
        uint256[] calldata amounts,
        bytes[] calldata signatures
    ) external {
        Job storage j = _openJob(jobId);
        if (round != j.rounds) revert StaleAttestation(jobId, round, j.rounds);
        if (nodes.length != amounts.length) revert LengthMismatch(nodes.length, amounts.length);
        controller.verify(attestationDigest(jobId, round, final_, nodes, amounts), signatures);
        _credit(jobId, j, nodes, amounts);
        emit WorkAttested(jobId, round, nodes, amounts, final_);
        if (final_) _close(jobId, j, Status.Completed);
    }

    /// @notice Pay the caller (a node) what was attested to it for `jobId`.
    function withdraw(uint256 jobId) external returns (uint256 amount) {
        amount = owed[jobId][msg.sender];
        if (amount == 0) revert NothingToWithdraw(jobId, msg.sender);
        owed[jobId][msg.sender] = 0;
        token.safeTransfer(msg.sender, amount);
        emit Withdrawn(jobId, msg.sender, amount);
    }

    /// @notice The client cancels an open job and gets back what was not attested.
    function cancel(uint256 jobId) external {
        Job storage j = _openJob(jobId);
        if (msg.sender != j.client) revert NotJobClient(jobId, msg.sender);
        _close(jobId, j, Status.Cancelled);
    }

    /// @notice Anyone closes an open job past its deadline; the rest goes back to the client.
    function refundExpired(uint256 jobId) external {
        Job storage j = _openJob(jobId);
        if (block.timestamp <= j.deadline) revert JobNotExpired(jobId, j.deadline);
        _close(jobId, j, Status.Expired);
    }

    function _openJob(uint256 jobId) private view returns (Job storage j) {
        j = _jobs[jobId];
        if (j.status == Status.None) revert UnknownJob(jobId);
        if (j.status != Status.Open) revert JobNotOpen(jobId, j.status);
    }

    function _credit(
        uint256 jobId,
        Job storage j,
        address[] calldata nodes,
        uint256[] calldata amounts
    ) private {
        uint256 sum;
        for (uint256 i = 0; i < nodes.length; i++) {
            if (nodes[i] == address(0)) revert InvalidNodeAddress(nodes[i]);
            sum += amounts[i];
            owed[jobId][nodes[i]] += amounts[i];
        }
        uint256 available = j.price - j.attested;
        if (sum > available) revert AttestationExceedsEscrow(jobId, sum, available);
        j.attested += sum;
        j.rounds += 1;
    }

    function _close(uint256 jobId, Job storage j, Status status) private {
        j.status = status;
        uint256 refund = j.price - j.attested;
        if (refund > 0) token.safeTransfer(j.client, refund);
        emit JobClosed(jobId, status, refund);
    }
}
