// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title MeshOps utility token
/// @notice A capped ERC-20. New tokens come only from contracts the owner authorises as
/// minters (the availability rewards); licence sales burn what they charge.
contract MeshToken is ERC20Capped, ERC20Burnable, Ownable {
    /// @notice Contracts allowed to mint.
    mapping(address account => bool) public isMinter;

    event MinterSet(address indexed account, bool allowed);

    /// @dev `caller` tried to mint without being an authorised minter.
    error NotMinter(address caller);

    /// @param initialSupply minted to `owner_` at deployment (the genesis allocation).
    constructor(
        string memory name_,
        string memory symbol_,
        uint256 cap_,
        uint256 initialSupply,
        address owner_
    ) ERC20(name_, symbol_) ERC20Capped(cap_) Ownable(owner_) {
        if (initialSupply > 0) {
            _mint(owner_, initialSupply);
        }
    }

    /// @notice Authorise or revoke a minter (a rewards or licence contract).
    function setMinter(address account, bool allowed) external onlyOwner {
        isMinter[account] = allowed;
        emit MinterSet(account, allowed);
    }

    /// @notice Mint `amount` to `to`; reverts past the cap (`ERC20ExceededCap`).
    function mint(address to, uint256 amount) external {
        if (!isMinter[msg.sender]) revert NotMinter(msg.sender);
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value)
        internal
        override(ERC20, ERC20Capped)
    {
        super._update(from, to, value);
    }
}
